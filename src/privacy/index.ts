export { eraseAddress, type EraseOptions, type EraseReport } from './erase.js';
export { startRetention, type RetentionSettings } from './retention.js';
