export { blockingEntry, type Stream } from './policy.js';
