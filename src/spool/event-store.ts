import { canonicalAddress, type Clock } from '../shared/index.js';
import type { Db } from './db.js';
import type { Writer } from './writer.js';
import type { EventType, ReplyRecord } from './queue-store.js';

/** Event types recorded outside a queue transition: reports, unsubscribes, reports not acted on. */
export type ReportEventType = 'bounce' | 'feedback' | 'unsubscribe' | 'unparsed' | 'shaping' | 'paused';

/**
 * One row of the delivery log with what readers outside the queue need: the recipient's
 * address (null once erased, or for events without a recipient) and the message's header
 * Message-ID. `id` increases with commit order, so it is a cursor.
 */
export interface EventEntry {
  readonly id: number;
  readonly at: number;
  readonly type: EventType | 'unsubscribe' | 'unparsed' | 'shaping' | 'paused';
  /** Spool id of the message; '' for an event about an address only (an unsubscribe). */
  readonly msgId: string;
  /** The message's Message-ID header, if it had one. */
  readonly messageId: string | null;
  readonly recipientId: number | null;
  readonly recipient: string | null;
  readonly accountId: number | null;
  readonly domain: string | null;
  readonly attempt: number | null;
  readonly mx: string | null;
  readonly reply: ReplyRecord | null;
  /** Extra facts of reports (source, category, reason); never parsed from remote input unchecked. */
  readonly details: Record<string, unknown> | null;
}

/** A report or unsubscribe to put in the delivery log (and so in front of webhooks). */
export interface ReportEventInput {
  readonly type: ReportEventType;
  readonly msgId: string | null;
  readonly recipientId: number | null;
  readonly accountId: number | null;
  readonly domain: string | null;
  /** Only for events without a recipient (unsubscribes): kept in details so readers can name it. */
  readonly address?: string;
  readonly details: Record<string, string | number | boolean | null>;
}

/**
 * The delivery log read as a stream, and the webhook cursors over it. The events table is the
 * outbox: a reader remembers the last id it handled and asks for what came after.
 */
export interface EventStore {
  /** Events with id > `afterId`, oldest first, at most `limit`. */
  after(afterId: number, limit: number): Promise<EventEntry[]>;
  /** The last `limit` events (of one message, if given), oldest first. */
  tail(limit: number, msgId?: string): Promise<EventEntry[]>;
  /** Events of one message with id > `afterId`, oldest first. */
  afterForMessage(msgId: string, afterId: number, limit: number): Promise<EventEntry[]>;
  /** The highest event id, 0 for an empty log. */
  latestId(): Promise<number>;
  /** Records a report or unsubscribe event; returns its id. */
  record(input: ReportEventInput): Promise<number>;
  /** The last event id acknowledged by the receiver keyed `key` (a hash of its URL); null if none yet. */
  cursor(key: string): Promise<number | null>;
  /** Durably moves the receiver's cursor (forward only). */
  setCursor(key: string, lastEventId: number): Promise<void>;
}

/** An events row joined with its recipient and message, as both backends read it. */
export interface EventLogRow {
  id: number;
  at: number;
  type: string;
  message_id: string;
  header_message_id: string | null;
  recipient_id: number | null;
  rcpt_to: string | null;
  account_id: number | null;
  domain: string | null;
  attempt: number | null;
  mx: string | null;
  reply_code: number | null;
  reply_enhanced: string | null;
  reply_text: string | null;
  details: string | null;
}

export const SELECT_EVENTS = `SELECT e.id, e.at, e.type, e.message_id, m.header_message_id, e.recipient_id, r.rcpt_to, e.account_id,
       e.domain, e.attempt, e.mx, e.reply_code, e.reply_enhanced, e.reply_text, e.details
  FROM events e
  LEFT JOIN recipients r ON r.id = e.recipient_id
  LEFT JOIN messages m ON m.id = e.message_id`;

function parseDetails(text: string | null): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function toEventEntry(r: EventLogRow): EventEntry {
  const details = parseDetails(r.details);
  const own = details?.['address'];
  return {
    id: r.id,
    at: r.at,
    type: r.type as EventEntry['type'],
    msgId: r.message_id,
    messageId: r.header_message_id,
    recipientId: r.recipient_id,
    recipient: r.rcpt_to ?? (typeof own === 'string' ? own : null),
    accountId: r.account_id,
    domain: r.domain,
    attempt: r.attempt,
    mx: r.mx,
    reply:
      r.reply_code === null
        ? null
        : { code: r.reply_code, enhanced: r.reply_enhanced ?? '', text: r.reply_text ?? '' },
    details,
  };
}

/** The details column of a report event: its facts, and the address of one without a recipient. */
export function reportDetails(input: ReportEventInput): string {
  const details: Record<string, unknown> = { ...input.details };
  if (input.address !== undefined) details['address'] = canonicalAddress(input.address) ?? input.address;
  return JSON.stringify(details);
}

export function createEventStore(db: Db, clock: Clock, writer: Writer): EventStore {
  const after = db.prepare<[number, number], EventLogRow>(
    `${SELECT_EVENTS} WHERE e.id > ? ORDER BY e.id LIMIT ?`,
  );
  const tailAll = db.prepare<[number], EventLogRow>(`${SELECT_EVENTS} ORDER BY e.id DESC LIMIT ?`);
  const tailMessage = db.prepare<[string, number], EventLogRow>(
    `${SELECT_EVENTS} WHERE e.message_id = ? ORDER BY e.id DESC LIMIT ?`,
  );
  const afterMessage = db.prepare<[string, number, number], EventLogRow>(
    `${SELECT_EVENTS} WHERE e.message_id = ? AND e.id > ? ORDER BY e.id LIMIT ?`,
  );
  const latest = db.prepare<[], { id: number | null }>('SELECT max(id) AS id FROM events');
  // Writes go through the writer (its thread in the daemon), like every write on a hot path.
  const insert = `INSERT INTO events (at, type, message_id, recipient_id, account_id, domain, details) VALUES (?, ?, ?, ?, ?, ?, ?)`;
  const getCursor = db.prepare<[string], { last_event_id: number }>(
    'SELECT last_event_id FROM webhook_cursors WHERE url_hash = ?',
  );
  const putCursor = `INSERT INTO webhook_cursors (url_hash, last_event_id, updated_at) VALUES (?, ?, ?)
     ON CONFLICT(url_hash) DO UPDATE SET last_event_id = max(last_event_id, excluded.last_event_id), updated_at = excluded.updated_at`;

  return {
    async after(afterId, limit) {
      return after.all(afterId, limit).map(toEventEntry);
    },
    async tail(limit, msgId) {
      const rows = msgId === undefined ? tailAll.all(limit) : tailMessage.all(msgId, limit);
      return rows.reverse().map(toEventEntry);
    },
    async afterForMessage(msgId, afterId, limit) {
      return afterMessage.all(msgId, afterId, limit).map(toEventEntry);
    },
    async latestId() {
      return latest.get()?.id ?? 0;
    },
    async record(input) {
      const info = await writer.run({
        op: 'exec',
        sql: insert,
        params: [
          clock.now(),
          input.type,
          input.msgId ?? '',
          input.recipientId,
          input.accountId,
          input.domain,
          reportDetails(input),
        ],
      });
      return info.lastInsertRowid;
    },
    async cursor(key) {
      return getCursor.get(key)?.last_event_id ?? null;
    },
    async setCursor(key, lastEventId) {
      await writer.run({ op: 'exec', sql: putCursor, params: [key, lastEventId, clock.now()] });
    },
  };
}
