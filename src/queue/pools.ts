import PQueue from 'p-queue';
import type { Config } from '../config/index.js';
import type { Clock } from '../shared/index.js';
import { resolveShaping, splitPoolKey, type Shaping } from './shaping.js';
import type { Throttle } from './throttle.js';
import type { Job } from './transitions.js';

/**
 * One destination pool: the domains that share a shaping rule's connection limits (a domain of
 * its own, or every domain whose MX matches a `[delivery.mx]` suffix). It holds the jobs leased
 * for it and runs at most `maxConnections` sessions.
 */
export interface Pool {
  readonly key: string;
  /** The configured shaping. */
  base: Shaping;
  /** What applies now: the base as the destination's shaping decision leaves it. */
  shaping: Shaping;
  /** Leased jobs waiting for a session, by destination domain. */
  readonly jobs: Map<string, Job[]>;
  readonly sessions: PQueue;
  nextSendAt: number;
  /** Sessions idling for more work, woken when jobs arrive. */
  readonly idle: Set<() => void>;
  lastActiveAt: number;
}

/** How long an open session waits for more mail to its destination before it quits. */
const SESSION_LINGER_MS = 1000;
/** Leased-but-waiting recipients per connection a pool may hold: a short horizon of work. */
const AHEAD_PER_CONNECTION = 50;
/** A paced pool holds what its rate sends in this long, at least one. */
const PACED_HORIZON_S = 10;
/** A pool with nothing to do for this long is dropped (there is one per domain ever sent to). */
const POOL_IDLE_MS = 60_000;
/** Domains whose pool is remembered; the oldest is forgotten first. */
const MAX_REMEMBERED_DOMAINS = 10_000;

/** How many leased-but-waiting recipients a destination with this shaping may hold. */
export function leaseCap(shaping: Shaping): number {
  // A suspended destination (see adaptive.ts) takes nothing.
  if (shaping.maxConnections === 0) return 0;
  const byConnections = shaping.maxConnections * AHEAD_PER_CONNECTION;
  if (!Number.isFinite(shaping.ratePerSecond)) return byConnections;
  return Math.max(1, Math.min(byConnections, Math.ceil(shaping.ratePerSecond * PACED_HORIZON_S)));
}

export interface Pools {
  /** The pool for `key`, made (or re-shaped) with `shaping`; remembers that `domain` goes there. */
  join(key: string, shaping: Shaping, domain: string): Pool;
  all(): IterableIterator<Pool>;
  /** The pool key a domain was last routed to, if its pool still exists. */
  keyOf(domain: string): string | undefined;
  /** The lease cap that applies to a domain: its pool's, or its own shaping's before routing. */
  capOf(domain: string): { key: string; cap: number };
  /** Caps of the domains with shaping of their own, and of any other before it is routed. */
  presetCaps(): { readonly domains: ReadonlyMap<string, number>; readonly other: number };
  takeJob(pool: Pool, domain: string): Job | undefined;
  /** Keeps a connection open a little while, so a steady trickle of mail reuses it. */
  lingerForJob(pool: Pool, domain: string, stopping: () => boolean): Promise<Job | undefined>;
  /**
   * Spaces sends so that a pool never exceeds its rate, whatever its number of sessions (and
   * of workers: the booking goes through the throttle). Ends
   * early when `signal` aborts (shutdown): the caller then checks before it sends.
   */
  pace(pool: Pool, signal: AbortSignal): Promise<void>;
  pendingJobs(pool: Pool): number;
  /** Drops pools that have had nothing to do for a while. */
  sweep(): void;
  setDelivery(delivery: Config['delivery']): void;
  /** Applies the shaping decisions as they stand now to every pool's limits. */
  reshape(): void;
}

/** Shaping as a destination's decision leaves it (identity without adaptive shaping). */
export type ShapeFn = (key: string, base: Shaping) => Shaping;

export function createPools(
  initial: Config['delivery'],
  clock: Clock,
  throttle: Throttle,
  shape: ShapeFn = (_key, base) => base,
): Pools {
  let delivery = initial;
  const pools = new Map<string, Pool>();
  const domainKeys = new Map<string, string>();
  let preset: { domains: Map<string, number>; other: number } | null = null;

  const pendingJobs = (pool: Pool): number => {
    let n = 0;
    for (const list of pool.jobs.values()) n += list.length;
    return n;
  };

  const takeJob = (pool: Pool, domain: string): Job | undefined => {
    const list = pool.jobs.get(domain);
    const job = list?.shift();
    if (list && list.length === 0) pool.jobs.delete(domain);
    if (job) pool.lastActiveAt = clock.now();
    return job;
  };

  const shapingOfKey = (key: string): Shaping => {
    const { destination, egress } = splitPoolKey(key);
    const domain = destination.startsWith('domain:') ? destination.slice(7) : '';
    const suffix = destination.startsWith('mx:') ? [destination.slice(3)] : [];
    const shaping = resolveShaping(delivery, domain, suffix).shaping;
    return egress === null ? shaping : { ...shaping, egress };
  };

  const apply = (pool: Pool): void => {
    const next = shape(pool.key, pool.base);
    pool.shaping = next;
    // p-queue needs one; a suspended pool runs no session (the runner checks).
    pool.sessions.concurrency = Math.max(1, next.maxConnections);
  };

  return {
    join(key, shaping, domain) {
      let pool = pools.get(key);
      if (pool && pool.base !== shaping) {
        pool.base = shaping;
        apply(pool);
      }
      if (!pool) {
        const now = shape(key, shaping);
        pool = {
          key,
          base: shaping,
          shaping: now,
          jobs: new Map(),
          sessions: new PQueue({ concurrency: Math.max(1, now.maxConnections) }),
          nextSendAt: 0,
          idle: new Set(),
          lastActiveAt: clock.now(),
        };
        pools.set(key, pool);
      }
      domainKeys.delete(domain);
      domainKeys.set(domain, key);
      if (domainKeys.size > MAX_REMEMBERED_DOMAINS) domainKeys.delete(domainKeys.keys().next().value!);
      pool.lastActiveAt = clock.now();
      return pool;
    },
    all: () => pools.values(),
    keyOf(domain) {
      const key = domainKeys.get(domain);
      return key !== undefined && pools.has(key) ? key : undefined;
    },
    capOf(domain) {
      const key = domainKeys.get(domain);
      const pool = key === undefined ? undefined : pools.get(key);
      if (pool) return { key: pool.key, cap: leaseCap(pool.shaping) };
      const own = `domain:${domain}`;
      return { key: own, cap: leaseCap(shape(own, resolveShaping(delivery, domain, []).shaping)) };
    },
    presetCaps() {
      if (!preset) {
        const domains = new Map<string, number>();
        for (const d of Object.keys(delivery.domain))
          domains.set(d, leaseCap(resolveShaping(delivery, d, []).shaping));
        preset = { domains, other: leaseCap(resolveShaping(delivery, '', []).shaping) };
      }
      return preset;
    },
    takeJob,
    async lingerForJob(pool, domain, stopping) {
      let wake!: () => void;
      const woken = new Promise<void>((r) => (wake = r));
      pool.idle.add(wake);
      const timer = setTimeout(wake, SESSION_LINGER_MS);
      await woken;
      clearTimeout(timer);
      pool.idle.delete(wake);
      return stopping() ? undefined : takeJob(pool, domain);
    },
    async pace(pool, signal) {
      if (!Number.isFinite(pool.shaping.ratePerSecond) || pool.shaping.ratePerSecond <= 0 || signal.aborted)
        return;
      // The booking is the node's (every worker's sends count), the wait is this session's.
      const at = await throttle.reserve(pool.key, pool.shaping.ratePerSecond);
      pool.nextSendAt = Math.max(pool.nextSendAt, at);
      const now = clock.now();
      if (at <= now) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, at - now);
        signal.addEventListener('abort', done, { once: true });
      });
    },
    pendingJobs,
    sweep() {
      const now = clock.now();
      for (const [key, pool] of pools) {
        const busy =
          pool.jobs.size > 0 || pool.sessions.size + pool.sessions.pending > 0 || pool.idle.size > 0;
        // A paced pool keeps its place in time until its next send is due.
        if (!busy && pool.nextSendAt <= now && now - pool.lastActiveAt > POOL_IDLE_MS) pools.delete(key);
      }
    },
    setDelivery(next) {
      delivery = next;
      preset = null;
      // Pools re-read their shaping when a job next arrives; limits change at once.
      for (const pool of pools.values()) {
        pool.base = shapingOfKey(pool.key);
        apply(pool);
      }
    },
    reshape() {
      for (const pool of pools.values()) apply(pool);
    },
  };
}
