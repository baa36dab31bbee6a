import type { Logger } from '../logging/index.js';
import { SpoolError, type Clock } from '../shared/index.js';
import type { DueRecipient, Spool } from '../spool/index.js';

/**
 * The only owner of this holder's leases: it takes due work, counts what each destination holds,
 * renews what is still being worked on, and lets go of what is done, released or abandoned.
 *
 * Fairness: a destination (its pool, once routed) holding its cap of leased-but-unsent
 * recipients is skipped when leasing, so a slow, paced or stuck destination holds only a short
 * horizon of work and never the leases other destinations need.
 */
export interface LeaseLoop {
  /** Takes back the leases of holders that are gone, then starts leasing and renewing. */
  start(): Promise<void>;
  /** Looks for due work now (new mail, a CLI retry, room freed). */
  wake(): void;
  /** Every recipient id this holder leases now. */
  held(): number[];
  count(): number;
  /** Done with these (outcome committed, or released): no longer renewed or counted. */
  finish(ids: readonly number[]): void;
  /** Returns these to the queue untried, then forgets them. */
  release(ids: readonly number[]): Promise<void>;
  /**
   * Stops renewing these: their leases lapse and they become due again for anyone. For work
   * whose outcome could not be recorded, where releasing could undo a delivery that happened.
   */
  abandon(ids: readonly number[]): void;
  /** Stops leasing and renewing; leases still held stay for the caller to release. */
  stop(): Promise<void>;
}

export interface LeaseLoopDeps {
  readonly spool: Spool;
  readonly holder: string;
  readonly leaseMs: number;
  /** Whether start() first takes back the leases of every other holder (see SchedulerDeps). */
  readonly recover: boolean;
  /**
   * A node whose heartbeat is older than this has lost its leases to the others (a spool
   * shared by several nodes; with SQLite, heartbeats record nothing).
   */
  readonly nodeTimeoutMs: number;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly pollIntervalMs: number;
  readonly maxInflight: number;
  /** The cap that applies to a domain and the pool key it counts against. */
  readonly capOf: (domain: string) => { key: string; cap: number };
  /** Caps known before any work is held: domains with shaping of their own, and the default. */
  readonly presetCaps: () => { readonly domains: ReadonlyMap<string, number>; readonly other: number };
  /** Accounts whose marketing mail stays queued (the guard paused it). */
  readonly pausedAccounts?: () => readonly number[];
  /** Runs before each lease (drop work of suspended destinations, forget idle pools). */
  readonly beforeLease: () => Promise<void>;
  /** New leases to route and hand to their pools. */
  readonly onLeased: (due: readonly DueRecipient[]) => void;
}

/** Most recipients taken by one lease operation. */
const LEASE_BATCH = 500;

export function createLeaseLoop(deps: LeaseLoopDeps): LeaseLoop {
  const { spool, holder, leaseMs, logger, clock } = deps;
  const domainOf = new Map<number, string>();
  const perDomain = new Map<string, number>();
  let timer: NodeJS.Timeout | null = null;
  let renewTimer: NodeJS.Timeout | null = null;
  let heartbeatTimer: NodeJS.Timeout | null = null;
  let polling: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  const forget = (ids: readonly number[]): void => {
    let freed = false;
    for (const id of ids) {
      const domain = domainOf.get(id);
      if (domain === undefined) continue;
      domainOf.delete(id);
      const n = (perDomain.get(domain) ?? 1) - 1;
      if (n <= 0) perDomain.delete(domain);
      else perDomain.set(domain, n);
      // Refill before the destination runs dry, not after.
      if (n <= deps.capOf(domain).cap / 2) freed = true;
    }
    if (freed) schedule(0);
  };

  /** How much more each destination may lease now: its pool's cap less what the pool holds. */
  const rooms = (): { room: Record<string, number>; newDomainRoom: number } => {
    const preset = deps.presetCaps();
    const room: Record<string, number> = Object.fromEntries(preset.domains);
    const byKey = new Map<string, { held: number; cap: number; domains: string[] }>();
    for (const [domain, n] of perDomain) {
      const { key, cap } = deps.capOf(domain);
      const entry = byKey.get(key) ?? { held: 0, cap, domains: [] };
      entry.held += n;
      entry.domains.push(domain);
      byKey.set(key, entry);
    }
    for (const e of byKey.values()) for (const d of e.domains) room[d] = Math.max(0, e.cap - e.held);
    return { room, newDomainRoom: Math.max(1, preset.other) };
  };

  const schedule = (delay: number): void => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void poll(), delay);
  };

  const poll = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (polling) {
      again = true;
      return polling;
    }
    polling = (async () => {
      let full = false;
      try {
        await deps.beforeLease();
        const limit = Math.min(deps.maxInflight - domainOf.size, LEASE_BATCH);
        if (limit > 0 && !stopped) {
          const { due, more } = await spool.queue.leaseDue({
            holder,
            limit,
            leaseMs,
            ...rooms(),
            pausedAccounts: deps.pausedAccounts?.() ?? [],
          });
          // A lease of ours that lapsed while we still work on it (renewals failed) comes back
          // as due: it is renewed by this lease, and must not be sent a second time.
          const fresh = due.filter((r) => !domainOf.has(r.id));
          for (const r of fresh) {
            domainOf.set(r.id, r.domain);
            perDomain.set(r.domain, (perDomain.get(r.domain) ?? 0) + 1);
          }
          full = more;
          if (fresh.length > 0) deps.onLeased(fresh);
        }
      } catch (err) {
        logger.error({ err }, 'queue poll failed');
      } finally {
        polling = null;
      }
      if (again || full) {
        again = false;
        schedule(0);
      } else schedule(deps.pollIntervalMs);
    })();
    return polling;
  };

  const renew = async (): Promise<void> => {
    const ids = [...domainOf.keys()];
    if (ids.length === 0) return;
    try {
      await spool.queue.renew(holder, ids, clock.now() + leaseMs);
    } catch (err) {
      // The leases run out if this keeps failing; the work is then due again, never lost.
      logger.error({ err }, 'renewing leases failed');
    }
  };

  const heartbeat = async (): Promise<void> => {
    try {
      if (!(await spool.queue.heartbeat(holder, deps.nodeTimeoutMs)))
        logger.error('another live instance now uses this node name; its leases and ours may clash');
      const taken = await spool.queue.releaseLostNodes(deps.nodeTimeoutMs);
      if (taken > 0) {
        logger.warn({ recipients: taken }, 'requeued the work of a node that stopped heartbeating');
        schedule(0);
      }
    } catch (err) {
      logger.error({ err }, 'node heartbeat failed');
    }
  };

  return {
    async start() {
      if (!(await spool.queue.heartbeat(holder, deps.nodeTimeoutMs))) {
        throw new SpoolError(
          'PETREL_NODE_IN_USE',
          `node name ${holder.split(':')[0]} is in use by another live node; give each node its own [cluster] node`,
        );
      }
      heartbeatTimer = setInterval(
        () => void heartbeat(),
        Math.max(50, Math.min(5000, Math.floor(deps.nodeTimeoutMs / 3))),
      );
      heartbeatTimer.unref();
      if (deps.recover) {
        // The caller holds the data dir's lock, so every other holder is gone.
        const recovered = await spool.queue.recoverInflight(holder);
        if (recovered > 0)
          logger.info({ recipients: recovered }, 'requeued work that was in flight at the last stop');
      }
      renewTimer = setInterval(() => void renew(), Math.max(50, Math.floor(leaseMs / 3)));
      renewTimer.unref();
      schedule(0);
    },
    wake: () => schedule(0),
    held: () => [...domainOf.keys()],
    count: () => domainOf.size,
    finish: forget,
    async release(ids) {
      if (ids.length === 0) return;
      try {
        await spool.queue.release(holder, ids);
      } finally {
        // Not released when the write failed: the lease lapses instead.
        forget(ids);
      }
    },
    abandon(ids) {
      forget(ids);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (renewTimer) clearInterval(renewTimer);
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      await polling;
    },
  };
}
