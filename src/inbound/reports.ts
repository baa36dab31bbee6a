import { readReport, type ReportReading } from '../bounce/index.js';
import type { Logger } from '../logging/index.js';
import type { Spool } from '../spool/index.js';
import {
  createSuppressionPolicy,
  type PolicyDecision,
  type SoftBounceSettings,
} from '../suppression/index.js';
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
  /** The soft-bounce rule, read per report (SIGHUP may change it). */
  readonly suppression: () => SoftBounceSettings;
  readonly now: () => number;
  /** Metrics hook: one call per report counted (category `unparsed` for those not acted on). */
  readonly onReport?: (category: string, reason: string) => void;
}

function logDecision(logger: Logger, reading: ReportReading, d: PolicyDecision): void {
  const rcpt = d.recipient
    ? { rcptId: d.recipient.id, msgId: d.recipient.msgId, queue: d.recipient.domain }
    : {};
  if (d.category === 'unparsed') {
    logger.warn(
      { ...rcpt, reason: d.reason },
      'report is not well-formed; counted as unparsed, no suppression',
    );
  } else if (d.category === 'none') {
    logger.info({ ...rcpt, kind: reading.kind, action: d.reason }, 'report needs no action');
  } else {
    const complaint = d.category === 'complaint';
    logger.info(
      {
        event: complaint ? 'feedback' : 'bounce',
        ...rcpt,
        category: d.category,
        reason: d.reason,
        suppressed: d.suppressed,
      },
      complaint ? 'complaint received' : 'bounce received',
    );
  }
}

/**
 * Acts on one accepted inbound message. Suppression changes only through a valid VERP token
 * (the RCPT, or a return path the report names for its original), so a forged report naming
 * some address changes nothing; and only for a well-formed DSN or ARF. The work is bounded: one
 * bounded parse, and a MAC check for at most a few return-path candidates.
 */
export async function handleInbound(
  raw: Buffer,
  targets: readonly InboundTarget[],
  deps: ReportDeps,
): Promise<void> {
  const { logger, verp } = deps;
  const policy = createSuppressionPolicy({
    stores: deps.spool,
    settings: deps.suppression,
    now: deps.now,
    ...(deps.onReport ? { onCounted: deps.onReport } : {}),
  });
  let reading: ReportReading | null = null;
  const read = (): ReportReading => (reading ??= readReport(raw));

  for (const target of targets) {
    if (target.kind === 'unsubscribe') {
      await policy.onReport({
        kind: 'unsubscribe',
        accountId: target.accountId,
        address: target.address,
        source: 'mailto',
      });
      logger.info({ event: 'suppressed', reason: 'unsubscribe', source: 'mailto' }, 'unsubscribed by mail');
      continue;
    }
    const r = read();
    const source = target.kind === 'fbl' ? 'fbl' : 'dsn';
    if (r.kind === 'none') {
      logger.info({ kind: r.kind }, 'inbound message is not a report; ignored');
      continue;
    }
    if (target.kind === 'fbl' && r.kind === 'dsn') {
      logger.info({ kind: r.kind }, 'message to the feedback address is not an ARF report; ignored');
      continue;
    }
    const ids =
      target.kind === 'bounce'
        ? [target.recipientId]
        : // A complaint names its recipient through the return path of the original it is about.
          [...new Set(r.returnPaths.map((a) => verp.parse(a)).filter((id): id is number => id !== null))];
    if (ids.length === 0) {
      if (r.kind === 'unparsed')
        logDecision(
          logger,
          r,
          (await policy.onReport({ kind: 'unparsed', recipientId: null, why: r.why, source }))!,
        );
      else logger.warn({ kind: r.kind }, 'report maps to no valid return path; no suppression');
      continue;
    }
    for (const recipientId of ids) {
      const decision = await policy.onReport(
        r.kind === 'unparsed'
          ? { kind: 'unparsed', recipientId, why: r.why, source }
          : r.kind === 'arf'
            ? { kind: 'arf', recipientId, feedbackType: r.feedbackType, complaint: r.complaint, source }
            : { kind: 'dsn', recipientId, results: r.results, source },
      );
      if (decision) logDecision(logger, r, decision);
      else logger.info({ rcptId: recipientId }, 'report for a recipient no longer held; ignored');
    }
  }
}
