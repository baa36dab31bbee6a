import type { Clock } from '../shared/index.js';

/**
 * The limits a destination pool shares with every other sender of the same node (workers) or,
 * later, cluster (nodes): open connections and the send rate. A pool's own session count and
 * pacing are per process; these make them the node's.
 */
export interface Throttle {
  /**
   * Waits for one of `max` connection slots of `key`; resolves with the function that gives it
   * back (call it once, when the session ends), or null when `signal` aborted first.
   */
  acquire(key: string, max: number, signal: AbortSignal): Promise<(() => void) | null>;
  /**
   * Books the next send of `key` at `ratePerSecond`; resolves with the time (ms) it may go at.
   * Every booking moves the next one on, so that all senders together keep the rate.
   */
  reserve(key: string, ratePerSecond: number): Promise<number>;
}

/** Connection slots and send times of one owner (a process, or a node's primary for its workers). */
export interface ThrottleTable {
  /** Takes a slot for `owner` now if one is free; otherwise queues the grant and returns false. */
  acquire(owner: string, key: string, max: number, grant: () => void): boolean;
  /** Counts a slot `owner` holds elsewhere (granted by another table) against this one's limits. */
  hold(owner: string, key: string): void;
  /** Gives back one slot of `owner`; the next waiter gets it. */
  release(owner: string, key: string): void;
  /** Withdraws a waiter that no longer wants its slot (aborted); true when it was still waiting. */
  cancel(grant: () => void): boolean;
  /** Gives back every slot and withdraws every waiter of `owner` (it died). */
  forget(owner: string): void;
  reserve(key: string, ratePerSecond: number): number;
}

interface Waiter {
  readonly owner: string;
  readonly max: number;
  readonly grant: () => void;
}

interface Slots {
  /** Open slots by owner. */
  readonly held: Map<string, number>;
  open: number;
  readonly waiting: Waiter[];
}

/** Send bookings older than this are dropped: a pool idle that long starts afresh. */
const RESERVATION_TTL_MS = 60_000;

export function createThrottleTable(clock: Clock): ThrottleTable {
  const slots = new Map<string, Slots>();
  const nextSendAt = new Map<string, number>();
  const keyOfGrant = new Map<() => void, string>();

  const slotsOf = (key: string): Slots => {
    let s = slots.get(key);
    if (!s) slots.set(key, (s = { held: new Map(), open: 0, waiting: [] }));
    return s;
  };

  const take = (s: Slots, owner: string): void => {
    s.open += 1;
    s.held.set(owner, (s.held.get(owner) ?? 0) + 1);
  };

  const drain = (key: string, s: Slots): void => {
    // A limit lowered by a reload lets the open slots close down to it before granting again.
    while (s.waiting.length > 0 && s.open < s.waiting[0]!.max) {
      const w = s.waiting.shift()!;
      keyOfGrant.delete(w.grant);
      take(s, w.owner);
      w.grant();
    }
    if (s.open === 0 && s.waiting.length === 0) slots.delete(key);
  };

  const giveBack = (key: string, owner: string, n: number): void => {
    const s = slots.get(key);
    if (!s) return;
    const mine = s.held.get(owner) ?? 0;
    const back = Math.min(mine, n);
    if (back === 0) return;
    if (mine - back === 0) s.held.delete(owner);
    else s.held.set(owner, mine - back);
    s.open -= back;
    drain(key, s);
  };

  return {
    acquire(owner, key, max, grant) {
      const s = slotsOf(key);
      if (s.waiting.length === 0 && s.open < max) {
        take(s, owner);
        return true;
      }
      s.waiting.push({ owner, max, grant });
      keyOfGrant.set(grant, key);
      return false;
    },
    hold: (owner, key) => take(slotsOf(key), owner),
    release: (owner, key) => giveBack(key, owner, 1),
    cancel(grant) {
      const key = keyOfGrant.get(grant);
      if (key === undefined) return false;
      keyOfGrant.delete(grant);
      const s = slots.get(key);
      if (!s) return true;
      const i = s.waiting.findIndex((w) => w.grant === grant);
      if (i >= 0) s.waiting.splice(i, 1);
      drain(key, s);
      return true;
    },
    forget(owner) {
      for (const [key, s] of [...slots]) {
        const kept = s.waiting.filter((w) => w.owner !== owner);
        for (const w of s.waiting) if (w.owner === owner) keyOfGrant.delete(w.grant);
        s.waiting.splice(0, s.waiting.length, ...kept);
        const mine = s.held.get(owner) ?? 0;
        if (mine > 0) giveBack(key, owner, mine);
        else drain(key, s);
      }
    },
    reserve(key, ratePerSecond) {
      const now = clock.now();
      if (nextSendAt.size > 10_000) {
        for (const [k, at] of nextSendAt) if (at < now - RESERVATION_TTL_MS) nextSendAt.delete(k);
      }
      const at = Math.max(now, nextSendAt.get(key) ?? 0);
      nextSendAt.set(key, at + 1000 / ratePerSecond);
      return at;
    },
  };
}

/** The throttle of a single process: its own table, no one else to agree with. */
export function localThrottle(clock: Clock): Throttle {
  const table = createThrottleTable(clock);
  return {
    acquire(key, max, signal) {
      if (signal.aborted) return Promise.resolve(null);
      return new Promise((resolve) => {
        let done = false;
        const release = (): void => {
          if (done) return;
          done = true;
          table.release('self', key);
        };
        const grant = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        };
        const onAbort = (): void => {
          if (table.cancel(grant)) resolve(null);
        };
        if (table.acquire('self', key, max, grant)) resolve(release);
        else signal.addEventListener('abort', onAbort, { once: true });
      });
    },
    reserve: (key, rate) => Promise.resolve(table.reserve(key, rate)),
  };
}
