export { eraseAddress, exportAddress, messagesNaming, type EraseOptions, type EraseReport } from './erase.js';
export { mentionedAddresses, mentionsAddress } from './mentions.js';
export { startRetention, type RetentionSettings } from './retention.js';
