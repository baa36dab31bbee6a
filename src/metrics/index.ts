export { createMetrics, type Metrics, type MetricsOptions, type QueueDepth } from './registry.js';
