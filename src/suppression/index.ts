export { blockingEntry, softBouncesSuppress, type SoftBounceThresholds, type Stream } from './policy.js';
