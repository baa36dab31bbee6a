import { classifyReply, type BounceResult } from '../bounce/index.js';
import type { Config } from '../config/index.js';
import type {
  BounceRecordInput,
  BounceRule,
  BounceWrite,
  Spool,
  SuppressionRecord,
  SuppressionStore,
} from '../spool/index.js';

export type Stream = 'transactional' | 'marketing';

/**
 * The entry that stops mail of `stream` from an account to an address, or null. Bounces,
 * complaints and manual entries stop everything; unsubscribes stop marketing mail only.
 * With `stream` unknown (at RCPT, before the headers are read) only the first kind counts.
 */
export async function blockingEntry(
  store: SuppressionStore,
  accountId: number | null,
  address: string,
  stream: Stream | null,
): Promise<SuppressionRecord | null> {
  const entries = await store.find(accountId, address);
  return (
    entries.find((e) => e.scope === 'all' || (e.scope === 'marketing' && stream === 'marketing')) ?? null
  );
}

/** The rows the policy reads and writes. */
export type PolicyStores = Pick<Spool, 'queue' | 'suppressions' | 'events'>;

/** The settings of the soft-bounce rule. */
export type SoftBounceSettings = Pick<Config['suppression'], 'soft_bounce_limit' | 'soft_bounce_window'>;

export interface SuppressionPolicyDeps {
  readonly stores: PolicyStores;
  /** Read at every soft bounce, so a SIGHUP reload applies to the next one. */
  readonly settings: () => SoftBounceSettings;
  readonly now: () => number;
  /**
   * One call per report or reply counted, by category (`hard`, `soft`, `complaint`, `unparsed`,
   * `unsubscribe`) and reason (a bounce reason, a feedback type, or why a report was unparsed).
   */
  readonly onCounted?: (category: string, reason: string) => void;
}

/** A report the inbound listener read, for a recipient its VERP token named. */
export type InboundReport =
  /** A well-formed DSN: its results, of which the one naming the recipient counts. */
  | {
      readonly kind: 'dsn';
      readonly recipientId: number;
      readonly results: readonly BounceResult[];
      readonly source: string;
    }
  /** A well-formed ARF; `complaint` false for types that say nothing against the mail (not-spam, …). */
  | {
      readonly kind: 'arf';
      readonly recipientId: number;
      readonly feedbackType: string;
      readonly complaint: boolean;
      readonly source: string;
    }
  /** Looked like a report but was not well-formed: counted and logged, never acted on. */
  | {
      readonly kind: 'unparsed';
      readonly recipientId: number | null;
      readonly why: string;
      readonly source: string;
    }
  | {
      readonly kind: 'unsubscribe';
      readonly accountId: number | null;
      readonly address: string;
      readonly source: string;
    };

/** What the policy did with a report or reply. */
export interface PolicyDecision {
  /** `none` when nothing was recorded (a delay, a report naming someone else). */
  readonly category: string;
  readonly reason: string;
  readonly suppressed: boolean;
  /** The recipient the decision was about, for the caller's log line. */
  readonly recipient: { readonly id: number; readonly msgId: string; readonly domain: string } | null;
}

/**
 * What bounces, complaints and unsubscribes do, wherever they come from: a DSN or ARF on the
 * inbound listener, an unsubscribe by mail or one-click, a 5xx reply during delivery. A hard
 * bounce or a complaint suppresses the address for the account at once; soft bounces do once
 * `soft_bounce_limit` of them fall within `soft_bounce_window`; an unsubscribe stops marketing mail.
 */
export interface SuppressionPolicy {
  /** Null when the recipient the report names is no longer held. */
  onReport(report: InboundReport): Promise<PolicyDecision | null>;
  /**
   * What a reply received while delivering to the recipient writes (only a 5xx counts), for the
   * queue to commit with the outcome; null when nothing applies. `counted` reports it once committed.
   */
  planReply(
    rcpt: {
      readonly id: number;
      readonly messageId: string;
      readonly accountId: number | null;
      readonly address: string;
    },
    reply: { readonly code: number; readonly enhanced: string; readonly text: string },
  ): { readonly write: BounceWrite; counted(): void } | null;
}

/** What a bounce record says, before it is tied to a recipient. */
type Bounce = Omit<BounceRecordInput, 'accountId' | 'recipientId' | 'messageId' | 'address'> & {
  /** The suppression entry's reason. */
  readonly entryReason: string;
};

type Rcpt = NonNullable<Awaited<ReturnType<PolicyStores['queue']['recipient']>>>;

/** Records an unsubscribe (marketing mail only); false when the address was already unsubscribed. */
export async function unsubscribe(
  stores: Pick<PolicyStores, 'suppressions' | 'events'>,
  accountId: number | null,
  address: string,
  source: string,
): Promise<boolean> {
  const added = await stores.suppressions.add({
    accountId,
    address,
    scope: 'marketing',
    reason: 'unsubscribe',
    source,
  });
  if (added) {
    await stores.events.record({
      type: 'unsubscribe',
      msgId: null,
      recipientId: null,
      accountId,
      domain: address.split('@').pop()!.toLowerCase(),
      address,
      details: { source },
    });
  }
  return added;
}

/** The result for the recipient: the one naming that address. A report naming someone else changes nothing. */
function resultFor(results: readonly BounceResult[], address: string): BounceResult | null {
  const lower = address.toLowerCase();
  return results.find((r) => r.recipient === lower) ?? null;
}

export function createSuppressionPolicy(deps: SuppressionPolicyDeps): SuppressionPolicy {
  const { stores } = deps;
  const about = (rcpt: Rcpt): PolicyDecision['recipient'] => ({
    id: rcpt.id,
    msgId: rcpt.messageId,
    domain: rcpt.domain,
  });

  /** The one bounce-to-suppression rule: at once if hard or a complaint, soft once too often. */
  const ruleFor = (b: Bounce): BounceRule | null => {
    const rule = { scope: 'all' as const, reason: b.entryReason, source: b.source };
    if (b.category === 'hard' || b.category === 'complaint') return { ...rule, soft: null };
    if (b.category !== 'soft') return null;
    const { soft_bounce_limit: limit, soft_bounce_window: window } = deps.settings();
    return { ...rule, soft: { limit, since: deps.now() - window } };
  };

  /** Records a bounce, then suppresses as its rule says. */
  const bounce = async (rcpt: Rcpt, b: Bounce): Promise<PolicyDecision> => {
    await stores.suppressions.recordBounce({
      accountId: rcpt.accountId,
      recipientId: rcpt.id,
      messageId: rcpt.messageId,
      address: rcpt.address,
      kind: b.kind,
      category: b.category,
      reason: b.reason,
      status: b.status,
      diagnostic: b.diagnostic,
      source: b.source,
    });
    deps.onCounted?.(b.category, b.reason);
    const rule = ruleFor(b);
    const suppress =
      rule !== null &&
      (rule.soft === null ||
        (await stores.suppressions.softBouncesSince(rcpt.accountId, rcpt.address, rule.soft.since)) >=
          rule.soft.limit);
    if (suppress) {
      await stores.suppressions.add({
        accountId: rcpt.accountId,
        address: rcpt.address,
        scope: 'all',
        reason: b.entryReason,
        source: b.source,
      });
    }
    return { category: b.category, reason: b.reason, suppressed: suppress, recipient: about(rcpt) };
  };

  const nothing = (rcpt: Rcpt | null, category = 'none', reason = 'undefined'): PolicyDecision => ({
    category,
    reason,
    suppressed: false,
    recipient: rcpt ? about(rcpt) : null,
  });

  return {
    async onReport(report) {
      if (report.kind === 'unsubscribe') {
        await unsubscribe(stores, report.accountId, report.address, report.source);
        deps.onCounted?.('unsubscribe', 'unsubscribe');
        return { category: 'unsubscribe', reason: 'unsubscribe', suppressed: true, recipient: null };
      }
      const rcpt = report.recipientId === null ? null : await stores.queue.recipient(report.recipientId);
      if (report.kind === 'unparsed') {
        deps.onCounted?.('unparsed', report.why);
        if (rcpt) {
          await stores.events.record({
            type: 'unparsed',
            msgId: rcpt.messageId,
            recipientId: rcpt.id,
            accountId: rcpt.accountId,
            domain: rcpt.domain,
            details: { source: report.source, why: report.why },
          });
        }
        return nothing(rcpt, 'unparsed', report.why);
      }
      if (!rcpt) return null;
      if (report.kind === 'arf') {
        if (!report.complaint) return nothing(rcpt, 'none', report.feedbackType);
        const decision = await bounce(rcpt, {
          kind: 'arf',
          category: 'complaint',
          reason: 'feedback',
          status: null,
          diagnostic: null,
          source: report.source,
          entryReason: `complaint:${report.feedbackType}`,
        });
        await stores.events.record({
          type: 'feedback',
          msgId: rcpt.messageId,
          recipientId: rcpt.id,
          accountId: rcpt.accountId,
          domain: rcpt.domain,
          details: {
            source: report.source,
            category: 'complaint',
            reason: 'feedback',
            status: null,
            feedbackType: report.feedbackType,
          },
        });
        return decision;
      }
      const result = resultFor(report.results, rcpt.address);
      if (
        !result ||
        result.category === 'none' ||
        result.action === 'delayed' ||
        result.action === 'delivered'
      ) {
        return nothing(rcpt, 'none', result?.action ?? 'undefined');
      }
      const reason = result.reason ?? 'undefined';
      const decision = await bounce(rcpt, {
        kind: 'dsn',
        category: result.category,
        reason,
        status: result.status,
        diagnostic: result.diagnostic,
        source: report.source,
        entryReason: `${result.category}:${reason}`,
      });
      await stores.events.record({
        type: 'bounce',
        msgId: rcpt.messageId,
        recipientId: rcpt.id,
        accountId: rcpt.accountId,
        domain: rcpt.domain,
        details: { source: report.source, category: result.category, reason, status: result.status },
      });
      return decision;
    },

    planReply(rcpt, reply) {
      if (reply.code < 500) return null;
      const c = classifyReply(reply.code, reply.enhanced || null, reply.text);
      const b: Bounce = {
        kind: 'smtp',
        category: c.category,
        reason: c.reason,
        status: c.status,
        diagnostic: `${reply.code} ${reply.enhanced} ${reply.text}`,
        source: 'smtp',
        entryReason: `${c.category}:${c.reason}`,
      };
      const write = stores.suppressions.planBounce(
        {
          accountId: rcpt.accountId,
          recipientId: rcpt.id,
          messageId: rcpt.messageId,
          address: rcpt.address,
          ...b,
        },
        ruleFor(b),
      );
      return { write, counted: () => deps.onCounted?.(b.category, b.reason) };
    },
  };
}
