import { randomBytes } from 'node:crypto';
import type { Clock } from '../shared/index.js';
import type { Db } from './db.js';
import type { NewMessage } from './records.js';
import type { StagedCopy } from './hot-ops.js';
import type { Writer } from './writer.js';

export type { NewMessage } from './records.js';
export type { StagedCopy } from './hot-ops.js';

export interface StoredRecipient {
  readonly id: number;
  readonly address: string;
  readonly domain: string;
  readonly state: string;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastReply: string | null;
}

export interface StoredMessage {
  readonly id: string;
  readonly accountId: number | null;
  readonly mailFrom: string;
  readonly headerMessageId: string | null;
  readonly size: number;
  readonly body: Buffer;
  readonly listener: string;
  readonly receivedAt: number;
  readonly stream: string;
  readonly recipients: readonly StoredRecipient[];
}

/** The spool's message table, as the rest of Petrel sees it. */
export interface MessageStore {
  /** A new queue id; sortable by time, unique without a database round trip. */
  newId(): string;
  /**
   * Makes the message and all its recipients durable (fsync) and resolves only then.
   * Concurrent calls share one transaction and one fsync (group commit). Rejects with
   * SpoolError PETREL_SPOOL_FULL (retry later) or PETREL_SPOOL_WRITE when nothing was stored.
   */
  insert(id: string, message: NewMessage): Promise<void>;
  /**
   * Writes copies of one submission (one per recipient) durably, with their recipients staged:
   * no delivery sees them until {@link publish}. The copies of one call commit together or not
   * at all. Rejects as insert does.
   */
  stage(copies: readonly StagedCopy[]): Promise<void>;
  /**
   * Makes every staged recipient of these messages due now, with its reception event, in one
   * transaction; resolves with how many (fewer than staged if erasure removed some meanwhile).
   */
  publish(ids: readonly string[]): Promise<number>;
  /** Deletes these messages while their recipients are still staged (a failed submission). */
  discard(ids: readonly string[]): Promise<void>;
  /**
   * Deletes every message whose recipients are staged: what a submission cut short by a crash
   * left. Only at start-up, before any submission is accepted; resolves with how many.
   */
  purgeStaged(): Promise<number>;
  get(id: string): Promise<StoredMessage | null>;
  count(): Promise<number>;
}

interface MessageRow {
  id: string;
  account_id: number | null;
  mail_from: string;
  header_message_id: string | null;
  size: number;
  body: Buffer;
  listener: string;
  received_at: number;
  stream: string;
}

interface RecipientRow {
  id: number;
  rcpt_to: string;
  domain: string;
  state: string;
  attempts: number;
  next_attempt_at: number;
  last_reply: string | null;
}

export function createMessageStore(db: Db, clock: Clock, writer: Writer): MessageStore {
  const selectMessage = db.prepare<[string], MessageRow>('SELECT * FROM messages WHERE id = ?');
  const selectRecipients = db.prepare<[string], RecipientRow>(
    `SELECT id, rcpt_to, domain, state, attempts, next_attempt_at, last_reply
     FROM recipients WHERE message_id = ? ORDER BY id`,
  );
  const countMessages = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM messages');

  return {
    newId(): string {
      return (
        clock.now().toString(36).toUpperCase().padStart(9, '0') + randomBytes(5).toString('hex').toUpperCase()
      );
    },
    insert(id, message) {
      return writer.run({ op: 'insert', id, message, now: clock.now() });
    },
    stage(copies) {
      return writer.run({ op: 'stage', copies, now: clock.now() });
    },
    publish(ids) {
      return writer.run({ op: 'publish', ids, now: clock.now() });
    },
    discard(ids) {
      return writer.run({ op: 'discard', ids });
    },
    async purgeStaged() {
      const sql = `DELETE FROM messages WHERE id IN (SELECT message_id FROM recipients WHERE state = 'staged')`;
      return (await writer.run({ op: 'exec', sql, params: [] })).changes;
    },
    async get(id) {
      const row = selectMessage.get(id);
      if (!row) return null;
      const recipients = selectRecipients.all(id).map((r): StoredRecipient => ({
        id: r.id,
        address: r.rcpt_to,
        domain: r.domain,
        state: r.state,
        attempts: r.attempts,
        nextAttemptAt: r.next_attempt_at,
        lastReply: r.last_reply,
      }));
      return {
        id: row.id,
        accountId: row.account_id,
        mailFrom: row.mail_from,
        headerMessageId: row.header_message_id,
        size: row.size,
        body: row.body,
        listener: row.listener,
        receivedAt: row.received_at,
        stream: row.stream,
        recipients,
      };
    },
    async count() {
      return countMessages.get()!.n;
    },
  };
}
