import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { EventEntry } from '../spool/index.js';

/** What a webhook receiver sees; the delivery log's finer type travels as `logType`. */
export const WEBHOOK_EVENT_TYPES = [
  'delivered',
  'deferred',
  'bounced',
  'complained',
  'unsubscribed',
  'suppressed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Delivery-log types that receivers hear about; reception and cancellation stay internal. */
const TYPE_OF_LOG: Readonly<Record<string, WebhookEventType>> = {
  delivery: 'delivered',
  transient_failure: 'deferred',
  bounce: 'bounced',
  // An expired recipient will never get the message: for a receiver that is a bounce.
  expiration: 'bounced',
  feedback: 'complained',
  unsubscribe: 'unsubscribed',
  suppressed: 'suppressed',
};

/** One event in a webhook batch (the JSON wire format; field names are a contract). */
export interface WebhookEvent {
  /** Delivery-log id: increases in commit order; receivers dedupe on it. */
  readonly id: number;
  readonly type: WebhookEventType;
  readonly logType: string;
  /** ISO 8601. */
  readonly at: string;
  /** Petrel's queue id ("queued as"); '' for an unsubscribe, which names an address only. */
  readonly msgId: string;
  /** The message's Message-ID header. */
  readonly messageId: string | null;
  readonly recipientId: number | null;
  /** Null once the address was erased. */
  readonly recipient: string | null;
  readonly accountId: number | null;
  readonly domain: string | null;
  readonly attempt: number | null;
  readonly mx: string | null;
  readonly reply: { readonly code: number; readonly enhanced: string; readonly text: string } | null;
  readonly details: Record<string, unknown> | null;
}

export interface WebhookBatch {
  readonly events: readonly WebhookEvent[];
}

/** The receiver-facing event for a log row, or null when the type is not sent to receivers. */
export function toWebhookEvent(e: EventEntry): WebhookEvent | null {
  const type = TYPE_OF_LOG[e.type];
  if (!type) return null;
  let details = e.details;
  if (details && 'address' in details) {
    // The address is the event's `recipient`; no need to say it twice.
    const { address: _address, ...rest } = details;
    details = Object.keys(rest).length > 0 ? rest : null;
  }
  return {
    id: e.id,
    type,
    logType: e.type,
    at: new Date(e.at).toISOString(),
    msgId: e.msgId,
    messageId: e.messageId,
    recipientId: e.recipientId,
    recipient: e.recipient,
    accountId: e.accountId,
    domain: e.domain,
    attempt: e.attempt,
    mx: e.mx,
    reply: e.reply,
    details,
  };
}

export const SIGNATURE_HEADER = 'x-petrel-signature';
export const TIMESTAMP_HEADER = 'x-petrel-timestamp';

/**
 * `sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<raw body>`). The timestamp (Unix seconds,
 * sent in X-Petrel-Timestamp) is inside the MAC so a captured request cannot be replayed later
 * with a fresh timestamp; receivers should refuse old ones.
 */
export function signBody(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Receiver-side check, constant time (exported for receivers written in TypeScript and for tests). */
export function verifySignature(secret: string, timestamp: string, body: string, header: string): boolean {
  if (!/^\d{1,12}$/.test(timestamp)) return false;
  const expected = Buffer.from(signBody(secret, Number(timestamp), body));
  const got = Buffer.from(header);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** The cursor key of a receiver: its URL hashed, so the database holds no tokens a URL may carry. */
export function urlKey(url: string): string {
  return createHash('sha256').update(url).digest('hex');
}
