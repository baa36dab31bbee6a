export {
  openSpool,
  spoolPath,
  SPOOL_FILE,
  type Spool,
  type SpoolHealth,
  type SpoolOptions,
} from './spool.js';
export { lockDataDir, LOCK_FILE, type DataDirLock } from './lock.js';
export { openSqlite, type Db } from './db.js';
export type {
  MessageStore,
  NewMessage,
  StagedCopy,
  StoredMessage,
  StoredRecipient,
} from './message-store.js';
export type { Account, AccountLimits, AccountLimitsChange, AccountStore } from './account-store.js';
export type {
  QueueStore,
  BounceWrite,
  DueRecipient,
  ShapingDecision,
  RecipientUpdate,
  RecipientState,
  EventType,
  ReplyRecord,
  FollowUps,
  QueueEntry,
  EventRecord,
  DomainStats,
} from './queue-store.js';
export type { DkimKeyStore, DkimKeyRecord } from './dkim-store.js';
export type {
  SuppressionStore,
  SuppressionRecord,
  SuppressionScope,
  BounceRecordInput,
  BounceRule,
} from './suppression-store.js';
export type {
  PrivacyStore,
  ErasureCounts,
  ErasureResult,
  RetentionCounts,
  ExportDocument,
} from './privacy-store.js';
export type { EventStore, EventEntry, ReportEventInput, ReportEventType } from './event-store.js';
export { connectSpool, type SpoolTarget } from './connect.js';
export type { AccountHealth, AccountPause, GuardStore } from './guard-store.js';
export type { EgressStore, EgressUsage } from './egress-store.js';
export { KEY_SCOPES } from './key-store.js';
export type { IdempotencyRecord, IdempotencyStore } from './idempotency-store.js';
export type { ApiKey, ApiKeyStore, KeyScope, NewApiKey } from './key-store.js';
