import type { NewMessage, RecipientUpdate } from '../spool/index.js';
import { buildDsn, type FailedRecipient } from './dsn.js';
import type { Outcome, RouteHost } from './ports.js';
import { nextAttempt, type Shaping } from './shaping.js';

// What the outcomes of one delivery attempt do to its recipients, and the DSNs they owe the sender.

/** One message for one destination domain: its recipients there go in one transaction. */
export interface Job {
  readonly messageId: string;
  readonly domain: string;
  readonly mailFrom: string;
  readonly accountId: number | null;
  readonly receivedAt: number;
  readonly stream: 'transactional' | 'marketing';
  readonly recipients: {
    readonly id: number;
    readonly address: string;
    readonly attempts: number;
    /** When the sender was told of its delay, or null. */
    readonly delayWarnedAt: number | null;
  }[];
  readonly hosts: readonly RouteHost[];
}

/** Bounced or expired: the recipient is over and the sender is owed a DSN. */
export const isEnded = (u: RecipientUpdate): boolean => u.state === 'bounced' || u.state === 'expired';

/**
 * Each recipient's next state: one outcome per recipient, or one for all (a failed connection).
 * A deferral `delayWarning` ms or more after the message arrived is `delayWarned` when its
 * sender was not told yet; a null sender (a DSN among them) is never told.
 */
export function transitionsOf(
  job: Job,
  outcomes: readonly Outcome[],
  shaping: Shaping,
  now: number,
  delayWarning: number | null,
): RecipientUpdate[] {
  const warnable = delayWarning !== null && job.mailFrom !== '' && now - job.receivedAt >= delayWarning;
  return job.recipients.map((r, i) => {
    const o = outcomes[i] ?? outcomes[0]!;
    const base = {
      recipientId: r.id,
      messageId: job.messageId,
      accountId: job.accountId,
      domain: job.domain,
      attempted: true,
      reply: o.reply,
      mx: o.mx,
    };
    if (o.kind === 'delivered') return { ...base, state: 'delivered', event: 'delivery' };
    if (o.kind === 'failed') return { ...base, state: 'bounced', event: 'bounce' };
    const next = nextAttempt(shaping, r.attempts + 1, job.receivedAt, now);
    if (next === null) return { ...base, state: 'expired', event: 'expiration' };
    const update = { ...base, state: 'queued', event: 'transient_failure', nextAttemptAt: next } as const;
    return warnable && r.delayWarnedAt === null ? { ...update, delayWarned: true } : update;
  });
}

/**
 * The DSNs `updates` owe the sender: one failure report for the ended ones, one warning for the
 * delayed ones (each none when there are none, or for a null sender).
 */
export function dsnsFor(
  hostname: string,
  job: Job,
  updates: readonly RecipientUpdate[],
  original: Buffer,
  shaping: Shaping,
  now: number,
): NewMessage[] {
  const addressOf = (u: RecipientUpdate): string =>
    job.recipients.find((r) => r.id === u.recipientId)!.address;
  const report = (recipients: FailedRecipient[]): NewMessage | null =>
    recipients.length === 0
      ? null
      : buildDsn({
          reportingMta: hostname,
          originalMessageId: job.messageId,
          originalMailFrom: job.mailFrom,
          originalAccountId: job.accountId,
          arrivalDate: job.receivedAt,
          original,
          now,
          recipients,
        });
  const failed = report(
    updates.filter(isEnded).map((u) => ({
      address: addressOf(u),
      action: 'failed',
      status: u.state === 'expired' ? '4.4.7' : u.reply?.enhanced || '5.0.0',
      reply: u.reply,
      mx: u.mx,
      lastAttemptAt: now,
    })),
  );
  const delayed = report(
    updates
      .filter((u) => u.delayWarned === true)
      .map((u) => ({
        address: addressOf(u),
        action: 'delayed',
        status: u.reply?.enhanced || '4.0.0',
        reply: u.reply,
        mx: u.mx,
        lastAttemptAt: now,
        willRetryUntil: job.receivedAt + shaping.maxAge,
      })),
  );
  return [failed, delayed].filter((m): m is NewMessage => m !== null);
}
