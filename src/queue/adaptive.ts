import type { ShapingRuleConfig } from '../config/index.js';
import type { Clock, SmtpReply } from '../shared/index.js';
import type { ShapingDecision } from '../spool/index.js';
import type { Outcome } from './ports.js';
import { parseRate, type Shaping } from './shaping.js';

/** A rule ready to match replies. */
export interface CompiledRule {
  readonly name: string;
  readonly action: 'suspend' | 'throttle' | 'bounce';
  readonly mx: readonly string[];
  readonly domains: ReadonlySet<string>;
  readonly codes: ReadonlySet<number>;
  readonly enhanced: readonly string[];
  readonly text: RegExp | null;
  readonly durationMs: number;
  readonly connectionsFactor: number;
  readonly rateFactor: number;
  readonly rateCap: number | null;
  readonly rampMs: number;
}

/** A suspension ramps back from this share of the limits, as a throttle from its factors. */
const SUSPEND_RESTART_FACTOR = 1 / 16;
/** A rate cap over an unlimited rate is lifted after this many doublings. */
const CAP_DOUBLINGS = 4;

export function compileRules(rules: readonly ShapingRuleConfig[], defaultRampMs: number): CompiledRule[] {
  return rules.map((r) => ({
    name: r.name,
    action: r.action,
    mx: r.mx.map((s) => s.toLowerCase().replace(/^\.+/, '')),
    domains: new Set(r.domains.map((d) => d.toLowerCase())),
    codes: new Set(r.code),
    enhanced: r.enhanced,
    text: r.text === undefined ? null : new RegExp(r.text, 'i'),
    durationMs: r.duration ?? 0,
    connectionsFactor: r.action === 'suspend' ? SUSPEND_RESTART_FACTOR : (r.connections_factor ?? 1),
    rateFactor: r.action === 'suspend' ? SUSPEND_RESTART_FACTOR : (r.rate_factor ?? 1),
    rateCap: r.rate === undefined ? null : parseRate(r.rate),
    rampMs: r.ramp ?? defaultRampMs,
  }));
}

const hostMatches = (host: string, suffix: string): boolean => host === suffix || host.endsWith(`.${suffix}`);

/** Whether `rule` speaks of this reply from this destination: every condition it has holds. */
export function ruleMatches(
  rule: CompiledRule,
  domain: string,
  mx: string | null,
  reply: SmtpReply,
): boolean {
  const host = mx?.toLowerCase().replace(/\.$/, '') ?? '';
  const where =
    rule.domains.has(domain.toLowerCase()) || (host !== '' && rule.mx.some((s) => hostMatches(host, s)));
  if (!where) return false;
  if (rule.codes.size > 0 && !rule.codes.has(reply.code)) return false;
  if (
    rule.enhanced.length > 0 &&
    !rule.enhanced.some((e) => (e.endsWith('.') ? reply.enhanced.startsWith(e) : reply.enhanced === e))
  )
    return false;
  return rule.text === null || rule.text.test(reply.text);
}

/** Where a decision stands at `now`. */
export interface DecisionState {
  readonly phase: 'action' | 'ramp' | 'done';
  /** Connections factor now (1 when done). */
  readonly connectionsFactor: number;
  readonly rateFactor: number;
  /** Rate cap now, or null. */
  readonly rateCap: number | null;
  /** When the limits next change (null when done). */
  readonly nextChangeAt: number | null;
}

/**
 * The curve: the action's factors until `until`, then doubled every `rampMs` (the first doubling
 * at `until`) until they reach 1; a rate cap doubles likewise and is lifted once it no longer
 * binds (over `baseRate`) or after CAP_DOUBLINGS over an unlimited rate.
 */
export function decisionState(d: ShapingDecision, now: number, baseRate: number): DecisionState {
  if (now < d.until) {
    if (d.action === 'suspend') {
      return { phase: 'action', connectionsFactor: 0, rateFactor: 0, rateCap: 0, nextChangeAt: d.until };
    }
    return {
      phase: 'action',
      connectionsFactor: d.connectionsFactor,
      rateFactor: d.rateFactor,
      rateCap: d.rateCap,
      nextChangeAt: d.until,
    };
  }
  const steps = Math.floor((now - d.until) / d.rampMs) + 1;
  const grow = 2 ** steps;
  const cf = Math.min(1, d.connectionsFactor * grow);
  const rf = Math.min(1, d.rateFactor * grow);
  let cap = d.rateCap === null ? null : d.rateCap * grow;
  if (cap !== null && (cap >= baseRate || (!Number.isFinite(baseRate) && steps >= CAP_DOUBLINGS))) cap = null;
  if (cf >= 1 && rf >= 1 && cap === null)
    return { phase: 'done', connectionsFactor: 1, rateFactor: 1, rateCap: null, nextChangeAt: null };
  return {
    phase: 'ramp',
    connectionsFactor: cf,
    rateFactor: rf,
    rateCap: cap,
    nextChangeAt: d.until + steps * d.rampMs,
  };
}

/** The limits a decision leaves of `base` at `now`; maxConnections 0 means send nothing. */
export function shapedBy(base: Shaping, d: ShapingDecision | undefined, now: number): Shaping {
  if (!d) return base;
  const s = decisionState(d, now, base.ratePerSecond);
  if (s.phase === 'done') return base;
  if (s.connectionsFactor === 0) return { ...base, maxConnections: 0, ratePerSecond: 0 };
  let rate = base.ratePerSecond * s.rateFactor;
  if (s.rateCap !== null) rate = Math.min(rate, s.rateCap);
  return {
    ...base,
    maxConnections: Math.max(1, Math.floor(base.maxConnections * s.connectionsFactor)),
    ratePerSecond: rate,
  };
}

/** What observing one outcome decided. */
export interface Observation {
  /** The outcome to record: a bounce rule turns a deferral into a failure. */
  readonly outcome: Outcome;
  /** The rule that matched, if any. */
  readonly rule: CompiledRule | null;
  /** A new decision for the destination (to store and announce), if the rule made one. */
  readonly decision: ShapingDecision | null;
}

/**
 * The node's shaping decisions: rules matched against replies, decisions kept per destination
 * (pool key) and shared through the spool, limits derived from them.
 */
export interface Adaptive {
  observe(destination: string, domain: string, outcome: Outcome): Observation;
  /** `base` as the destination's decision leaves it now. */
  shape(destination: string, base: Shaping): Shaping;
  /**
   * Replaces the known decisions with the spool's (every worker's and node's), keeping this
   * one's that are not stored yet.
   */
  load(decisions: readonly ShapingDecision[]): void;
  /** A decision observe() made is in the spool (or failed to get there): load() may drop it. */
  settled(decision: ShapingDecision): void;
  decision(destination: string): ShapingDecision | undefined;
  readonly rules: readonly CompiledRule[];
}

function oneLine(reply: SmtpReply): string {
  return `${reply.code} ${reply.enhanced} ${reply.text}`.replace(/\s+/g, ' ').trim().slice(0, 300);
}

export function createAdaptive(rules: readonly CompiledRule[], clock: Clock): Adaptive {
  let decisions = new Map<string, ShapingDecision>();
  const unsettled = new Map<string, ShapingDecision>();
  return {
    rules,
    observe(destination, domain, outcome) {
      if (outcome.kind === 'delivered') return { outcome, rule: null, decision: null };
      const rule = rules.find((r) => ruleMatches(r, domain, outcome.mx, outcome.reply));
      if (!rule) return { outcome, rule: null, decision: null };
      if (rule.action === 'bounce') {
        return {
          outcome: outcome.kind === 'failed' ? outcome : { ...outcome, kind: 'failed' },
          rule,
          decision: null,
        };
      }
      const now = clock.now();
      const current = decisions.get(destination);
      // Replies to sends already under way when the action began restart nothing; a match
      // during the ramp does.
      if (current && now < current.until) return { outcome, rule, decision: null };
      const decision: ShapingDecision = {
        destination,
        rule: rule.name,
        action: rule.action,
        reply: oneLine(outcome.reply),
        connectionsFactor: rule.connectionsFactor,
        rateFactor: rule.rateFactor,
        rateCap: rule.rateCap,
        startedAt: now,
        until: now + rule.durationMs,
        rampMs: rule.rampMs,
      };
      decisions.set(destination, decision);
      unsettled.set(destination, decision);
      return { outcome, rule, decision };
    },
    shape(destination, base) {
      return shapedBy(base, decisions.get(destination), clock.now());
    },
    load(list) {
      const next = new Map(list.map((d) => [d.destination, d]));
      for (const [k, d] of unsettled) if ((next.get(k)?.startedAt ?? -Infinity) < d.startedAt) next.set(k, d);
      decisions = next;
    },
    settled(decision) {
      if (unsettled.get(decision.destination) === decision) unsettled.delete(decision.destination);
    },
    decision: (destination) => decisions.get(destination),
  };
}
