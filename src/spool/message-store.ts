import { randomBytes } from 'node:crypto';
import type { Clock } from '../shared/index.js';
import type { Committer } from './committer.js';
import type { Db } from './db.js';

/** A message as accepted at submission, ready to be made durable. */
export interface NewMessage {
  readonly accountId: number | null;
  readonly mailFrom: string;
  /** Envelope recipients with their ASCII domains (for per-domain queues). */
  readonly recipients: readonly { readonly address: string; readonly domain: string }[];
  readonly headerMessageId: string | null;
  /** The message exactly as it will be sent. */
  readonly body: Buffer;
  readonly listener: string;
  /** transactional (default) or marketing: unsubscribes stop only marketing mail. */
  readonly stream?: 'transactional' | 'marketing';
}

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

/**
 * Prepared statements that write one message, its recipients (due at once) and its reception
 * event. Must run inside a transaction.
 */
export function prepareMessageInsert(db: Db): (id: string, message: NewMessage, now: number) => void {
  const insertMessage = db.prepare(
    `INSERT INTO messages (id, account_id, mail_from, header_message_id, size, body, listener, received_at, stream)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertRecipient = db.prepare(
    `INSERT INTO recipients (message_id, rcpt_to, domain, state, next_attempt_at, updated_at)
     VALUES (?, ?, ?, 'queued', ?, ?)`,
  );
  const insertEvent = db.prepare(
    `INSERT INTO events (at, type, message_id, account_id, details) VALUES (?, 'reception', ?, ?, ?)`,
  );
  return (id, message, now) => {
    insertMessage.run(
      id, message.accountId, message.mailFrom, message.headerMessageId, message.body.length, message.body,
      message.listener, now, message.stream ?? 'transactional',
    );
    for (const r of message.recipients) insertRecipient.run(id, r.address, r.domain, now, now);
    insertEvent.run(now, id, message.accountId, JSON.stringify({ listener: message.listener, recipients: message.recipients.length, size: message.body.length }));
  };
}

export function createMessageStore(db: Db, clock: Clock, committer: Committer): MessageStore {
  const insertRows = prepareMessageInsert(db);
  const selectMessage = db.prepare<[string], MessageRow>('SELECT * FROM messages WHERE id = ?');
  const selectRecipients = db.prepare<[string], RecipientRow>(
    `SELECT id, rcpt_to, domain, state, attempts, next_attempt_at, last_reply
     FROM recipients WHERE message_id = ? ORDER BY id`,
  );
  const countMessages = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM messages');

  return {
    newId(): string {
      return clock.now().toString(36).toUpperCase().padStart(9, '0') + randomBytes(5).toString('hex').toUpperCase();
    },
    insert(id, message) {
      return committer.run(() => insertRows(id, message, clock.now()));
    },
    async get(id) {
      const row = selectMessage.get(id);
      if (!row) return null;
      const recipients = selectRecipients.all(id).map(
        (r): StoredRecipient => ({
          id: r.id,
          address: r.rcpt_to,
          domain: r.domain,
          state: r.state,
          attempts: r.attempts,
          nextAttemptAt: r.next_attempt_at,
          lastReply: r.last_reply,
        }),
      );
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
