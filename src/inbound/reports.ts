import { classifyMessage, type BounceReading, type BounceResult } from '../bounce/index.js';
import type { Logger } from '../logging/index.js';
import type { Spool } from '../spool/index.js';
import { softBouncesSuppress, type SoftBounceThresholds } from '../suppression/index.js';
import type { Verp } from '../verp/index.js';

/** What the listener accepted a message for (one entry per valid RCPT). */
export type InboundTarget =
  | { readonly kind: 'bounce'; readonly recipientId: number }
  | { readonly kind: 'fbl' }
  | { readonly kind: 'unsubscribe'; readonly accountId: number | null; readonly address: string };

export interface ReportDeps {
  readonly spool: Spool;
  readonly verp: Verp;
  readonly logger: Logger;
  /** Read at each soft bounce, so that a reload applies to the next report. */
  readonly softBounce: () => SoftBounceThresholds;
  readonly now: () => number;
  /** Metrics hook: one call per bounce or complaint acted on. */
  readonly onReport?: (category: string, reason: string) => void;
}

/**
 * The result for the recipient a token names: the one naming that address, or a lone result
 * that names nobody (a mangled DSN). A report naming someone else changes nothing.
 */
function resultFor(reading: BounceReading, address: string): BounceResult | null {
  const lower = address.toLowerCase();
  const exact = reading.results.find((r) => r.recipient === lower);
  if (exact) return exact;
  const only = reading.results.length === 1 ? reading.results[0]! : null;
  return only && only.recipient === null ? only : null;
}

/**
 * Acts on one accepted inbound message. Suppression changes only through a valid VERP token
 * (the RCPT, or a return path inside the returned original), so a forged report naming some
 * address changes nothing.
 */
export async function handleInbound(
  raw: Buffer,
  targets: readonly InboundTarget[],
  deps: ReportDeps,
): Promise<void> {
  const { spool, logger } = deps;
  let reading: BounceReading | null = null;
  const read = (): BounceReading => (reading ??= classifyMessage(raw));

  for (const target of targets) {
    if (target.kind === 'unsubscribe') {
      const added = await spool.suppressions.add({
        accountId: target.accountId,
        address: target.address,
        scope: 'marketing',
        reason: 'unsubscribe',
        source: 'mailto',
      });
      if (added) {
        await spool.events.record({
          type: 'unsubscribe',
          msgId: null,
          recipientId: null,
          accountId: target.accountId,
          domain: target.address.split('@').pop()!.toLowerCase(),
          address: target.address,
          details: { source: 'mailto' },
        });
      }
      logger.info({ event: 'suppressed', reason: 'unsubscribe', source: 'mailto' }, 'unsubscribed by mail');
      deps.onReport?.('unsubscribe', 'unsubscribe');
      continue;
    }
    const r = read();
    const ids =
      target.kind === 'bounce'
        ? [target.recipientId]
        : // A complaint names its recipient through the return path of the original it carries.
          deps.verp.findIn([...Object.values(r.originalHeaders), raw.toString('latin1')].join('\n'));
    if (r.kind === 'none' || r.kind === 'autoreply') {
      logger.info({ kind: r.kind, tokens: ids.length }, 'inbound message is not a report; ignored');
      continue;
    }
    if (target.kind === 'fbl' && r.kind !== 'arf') {
      logger.info({ kind: r.kind }, 'message to the feedback address is not an ARF report; ignored');
      continue;
    }
    if (ids.length === 0)
      logger.warn({ kind: r.kind }, 'report maps to no valid return path; no suppression');
    for (const id of ids) await applyReport(r, id, target.kind === 'fbl' ? 'fbl' : 'dsn', deps);
  }
}

async function applyReport(
  reading: BounceReading,
  recipientId: number,
  source: string,
  deps: ReportDeps,
): Promise<void> {
  const { spool, logger } = deps;
  const rcpt = await spool.queue.recipient(recipientId);
  if (!rcpt) {
    logger.info({ rcptId: recipientId }, 'report for a recipient no longer held; ignored');
    return;
  }
  const result = resultFor(reading, rcpt.address);
  const complaint = reading.kind === 'arf';
  const category = complaint ? 'complaint' : (result?.category ?? 'none');
  const reason = complaint ? 'feedback' : (result?.reason ?? 'undefined');
  if (
    !complaint &&
    (!result || category === 'none' || result.action === 'delayed' || result.action === 'delivered')
  ) {
    logger.info(
      { rcptId: rcpt.id, msgId: rcpt.messageId, action: result?.action ?? null },
      'report needs no action',
    );
    return;
  }
  await spool.suppressions.recordBounce({
    accountId: rcpt.accountId,
    recipientId: rcpt.id,
    messageId: rcpt.messageId,
    address: rcpt.address,
    kind: reading.kind,
    category,
    reason,
    status: result?.status ?? null,
    diagnostic: result?.diagnostic ?? null,
    source,
  });
  await spool.events.record({
    type: complaint ? 'feedback' : 'bounce',
    msgId: rcpt.messageId,
    recipientId: rcpt.id,
    accountId: rcpt.accountId,
    domain: rcpt.domain,
    details: {
      source,
      category,
      reason,
      status: result?.status ?? null,
      ...(complaint ? { feedbackType: result?.feedbackType ?? null } : {}),
    },
  });
  deps.onReport?.(category, reason);
  let suppress = category === 'hard' || category === 'complaint';
  if (category === 'soft') {
    suppress = await softBouncesSuppress(
      spool.suppressions,
      rcpt.accountId,
      rcpt.address,
      deps.now(),
      deps.softBounce(),
    );
  }
  logger.info(
    {
      event: complaint ? 'feedback' : 'bounce',
      rcptId: rcpt.id,
      msgId: rcpt.messageId,
      queue: rcpt.domain,
      category,
      reason,
      suppressed: suppress,
    },
    complaint ? 'complaint received' : 'bounce received',
  );
  if (suppress) {
    await spool.suppressions.add({
      accountId: rcpt.accountId,
      address: rcpt.address,
      scope: 'all',
      reason: complaint
        ? `complaint${result?.feedbackType ? `:${result.feedbackType}` : ''}`
        : `${category}:${reason}`,
      source,
    });
  }
}
