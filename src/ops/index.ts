export { showMessage, type MessageDocument } from './messages.js';
