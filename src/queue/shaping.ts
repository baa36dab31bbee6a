import type { Config } from '../config/index.js';
import { parseRateLimit } from '../shared/index.js';

/** How one destination may be sent to. */
export interface Shaping {
  readonly maxConnections: number;
  readonly messagesPerConnection: number;
  /** Messages per second; Infinity for unlimited. */
  readonly ratePerSecond: number;
  /** Delays after the 1st, 2nd, … failed attempt (ms); the last repeats. */
  readonly retry: readonly number[];
  readonly maxAge: number;
  readonly tls: 'may' | 'encrypt' | 'verify';
  /** The [[egress]] source to send from; null: whatever address the machine picks. */
  readonly egress: string | null;
}

type Rule = Config['delivery']['default'];

const BUILT_IN = {
  max_connections: 10,
  messages_per_connection: 100,
  rate: 'unlimited',
  retry: [60_000, 300_000, 900_000, 3_600_000, 14_400_000],
  max_age: 3 * 86_400_000,
  tls: 'may',
} as const;

/** "600/min" → 10 (per second); "unlimited" → Infinity. */
export function parseRate(rate: string): number {
  const r = parseRateLimit(rate);
  return r ? (r.count * 1000) / r.windowMs : Infinity;
}

/**
 * The shaping for a destination: built-in defaults, then `[delivery.default]`, then the longest
 * `[delivery.mx."suffix"]` matching any of its MX hosts, then `[delivery.domain."d"]`.
 * Also returns which rule decided the connection limits, so destinations sharing an MX rule
 * share one pool (all domains hosted at one provider count against one limit).
 */
export function resolveShaping(
  delivery: Config['delivery'],
  domain: string,
  mxHosts: readonly string[],
): { shaping: Shaping; poolKey: string } {
  const layers: Rule[] = [delivery.default];
  let poolKey = `domain:${domain}`;
  const suffix = Object.keys(delivery.mx)
    .filter((s) => mxHosts.some((h) => h === s || h.endsWith(`.${s}`)))
    .sort((a, b) => b.length - a.length)[0];
  if (suffix !== undefined) {
    layers.push(delivery.mx[suffix]!);
    poolKey = `mx:${suffix}`;
  }
  const own = delivery.domain[domain];
  if (own) {
    layers.push(own);
    if (own.max_connections !== undefined || own.rate !== undefined) poolKey = `domain:${domain}`;
  }
  const pick = <K extends keyof Rule>(key: K): NonNullable<Rule[K]> | undefined => {
    let value: Rule[K] | undefined;
    for (const l of layers) if (l[key] !== undefined) value = l[key];
    return value ?? undefined;
  };
  return {
    poolKey,
    shaping: {
      maxConnections: pick('max_connections') ?? BUILT_IN.max_connections,
      messagesPerConnection: pick('messages_per_connection') ?? BUILT_IN.messages_per_connection,
      ratePerSecond: parseRate(pick('rate') ?? BUILT_IN.rate),
      retry: pick('retry') ?? BUILT_IN.retry,
      maxAge: pick('max_age') ?? BUILT_IN.max_age,
      tls: pick('tls') ?? BUILT_IN.tls,
      egress: pick('egress') ?? null,
    },
  };
}

/**
 * After a failed attempt: when to try next, or null when the recipient has reached its maximum
 * age and expires. The last attempt is placed at the expiry time rather than skipped.
 */
export function nextAttempt(
  shaping: Shaping,
  attemptsSoFar: number,
  receivedAt: number,
  now: number,
): number | null {
  const expiresAt = receivedAt + shaping.maxAge;
  if (now >= expiresAt) return null;
  const delay = shaping.retry[Math.min(Math.max(attemptsSoFar - 1, 0), shaping.retry.length - 1)]!;
  return Math.min(now + delay, expiresAt);
}

/**
 * The pool of a destination sent from a source: each source has its own connections, rate and
 * shaping decisions there, as receivers count and throttle per sending address.
 */
export function egressPoolKey(poolKey: string, egress: string | null): string {
  return egress === null ? poolKey : `${poolKey}@${egress}`;
}

/** The destination key and source of a pool key (domain names never hold an "@"). */
export function splitPoolKey(key: string): { readonly destination: string; readonly egress: string | null } {
  const at = key.indexOf('@');
  return at < 0
    ? { destination: key, egress: null }
    : { destination: key.slice(0, at), egress: key.slice(at + 1) };
}
