export {
  aggregateMetrics,
  createMetrics,
  type Metrics,
  type MetricsOptions,
  type QueueDepth,
} from './registry.js';
