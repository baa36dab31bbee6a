// The records the hot-path writes carry (see hot-ops.ts), shared by the stores.

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
  /**
   * The addresses the content mentions once decoded, in canonical form (privacy's
   * mentionedAddresses), which erasure and export look up. When absent, they decode the body.
   */
  readonly mentions?: readonly string[];
}

/**
 * `staged`: a copy of a multi-copy submission written before the others are; never leased, and
 * made `queued` with all its siblings at once, or deleted with them (never both).
 */
export type RecipientState =
  'staged' | 'queued' | 'inflight' | 'delivered' | 'bounced' | 'expired' | 'suppressed' | 'cancelled';

/** One line of the delivery log (KumoMTA's record types). */
export type EventType =
  | 'reception'
  | 'delivery'
  | 'transient_failure'
  | 'bounce'
  | 'expiration'
  | 'suppressed'
  | 'cancelled'
  | 'feedback';

/** A recipient leased for delivery, with what the scheduler needs from its message (no body). */
export interface DueRecipient {
  readonly id: number;
  readonly messageId: string;
  readonly address: string;
  readonly domain: string;
  readonly attempts: number;
  readonly accountId: number | null;
  readonly mailFrom: string;
  readonly receivedAt: number;
  readonly stream: 'transactional' | 'marketing';
  /** When its sender was told that it is delayed (a delay DSN), or null: it is told once. */
  readonly delayWarnedAt: number | null;
}

export interface ReplyRecord {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

/** The end of one delivery attempt for one recipient. */
export interface RecipientUpdate {
  readonly recipientId: number;
  readonly messageId: string;
  readonly accountId: number | null;
  readonly domain: string;
  readonly state: Exclude<RecipientState, 'inflight' | 'staged'>;
  /** Only for state `queued`: when to try again. */
  readonly nextAttemptAt?: number;
  /** False when nothing was sent (suppressed, cancelled): the attempt count stays. */
  readonly attempted: boolean;
  readonly reply: ReplyRecord | null;
  readonly mx: string | null;
  readonly event: EventType;
  /**
   * A delay DSN reports this deferral, queued with it as a follow-up: the recipient is marked
   * warned in the same transaction, so its sender is told once, even across a crash.
   */
  readonly delayWarned?: boolean;
}

/** The details of an attempt's event: whether it told the sender of the delay (a delay DSN). */
export function attemptDetails(u: RecipientUpdate): string | null {
  return u.delayWarned ? JSON.stringify({ delayNotice: true }) : null;
}

/**
 * A shaping rule's decision for one destination (a pool key): its limits are cut until `until`,
 * then double every `rampMs` back to the configured ones. Shared by every worker and node.
 */
export interface ShapingDecision {
  readonly destination: string;
  readonly rule: string;
  readonly action: 'suspend' | 'throttle';
  /** The reply that matched, one line. */
  readonly reply: string;
  readonly connectionsFactor: number;
  readonly rateFactor: number;
  /** Messages per second while the action lasts; null for none. */
  readonly rateCap: number | null;
  readonly startedAt: number;
  readonly until: number;
  readonly rampMs: number;
}
