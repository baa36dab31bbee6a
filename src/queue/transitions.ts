import type { NewMessage, RecipientUpdate } from '../spool/index.js';
import { buildDsn } from './dsn.js';
import type { Outcome, RouteHost } from './ports.js';
import { nextAttempt, type Shaping } from './shaping.js';

// What the outcomes of one delivery attempt do to its recipients, and the DSN they owe the sender.

/** One message for one destination domain: its recipients there go in one transaction. */
export interface Job {
  readonly messageId: string;
  readonly domain: string;
  readonly mailFrom: string;
  readonly accountId: number | null;
  readonly receivedAt: number;
  readonly stream: 'transactional' | 'marketing';
  readonly recipients: { readonly id: number; readonly address: string; readonly attempts: number }[];
  readonly hosts: readonly RouteHost[];
}

/** Bounced or expired: the recipient is over and the sender is owed a DSN. */
export const isEnded = (u: RecipientUpdate): boolean => u.state === 'bounced' || u.state === 'expired';

/** Each recipient's next state: one outcome per recipient, or one for all (a failed connection). */
export function transitionsOf(
  job: Job,
  outcomes: readonly Outcome[],
  shaping: Shaping,
  now: number,
): RecipientUpdate[] {
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
    return { ...base, state: 'queued', event: 'transient_failure', nextAttemptAt: next };
  });
}

/** The DSN for the ended ones among `updates`, or null when none ended (or none is owed). */
export function dsnFor(
  hostname: string,
  job: Job,
  updates: readonly RecipientUpdate[],
  original: Buffer,
  now: number,
): NewMessage | null {
  const ended = updates.filter(isEnded);
  if (ended.length === 0) return null;
  return buildDsn({
    reportingMta: hostname,
    originalMessageId: job.messageId,
    originalMailFrom: job.mailFrom,
    originalAccountId: job.accountId,
    arrivalDate: job.receivedAt,
    original,
    now,
    recipients: ended.map((u) => ({
      address: job.recipients.find((r) => r.id === u.recipientId)!.address,
      action: 'failed',
      status: u.state === 'expired' ? '4.4.7' : u.reply?.enhanced || '5.0.0',
      reply: u.reply,
      mx: u.mx,
      lastAttemptAt: now,
    })),
  });
}
