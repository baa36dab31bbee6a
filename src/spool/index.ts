export { openSpool, spoolPath, SPOOL_FILE, type Spool, type SpoolOptions } from './spool.js';
export type { MessageStore, NewMessage, StoredMessage, StoredRecipient } from './message-store.js';
export type { Account, AccountStore } from './account-store.js';
