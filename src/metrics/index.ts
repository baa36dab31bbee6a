export {
  aggregateMetrics,
  type AccountQuotaUsage,
  createMetrics,
  type Metrics,
  type MetricsOptions,
  type QueueDepth,
} from './registry.js';
