import { createThrottleTable, type Throttle } from '../queue/index.js';
import type { Clock } from '../shared/index.js';
import type { RedisLink } from './redis-link.js';
import { BOOK } from './redis-scripts.js';

interface Waiter {
  readonly key: string;
  readonly max: number;
  /** The grant queued in the per-node table while the link is degraded. */
  local: (() => void) | null;
  done: boolean;
  readonly settle: (release: (() => void) | null) => void;
}

/** How often waiters look again when no release notification came (a dead node's slot lapsed). */
export const DEFAULT_POLL_MS = 500;

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

/**
 * The cluster's throttle: connection slots are members of a sorted set per destination, each
 * with its own expiry that its holder renews, so a dead node's slots come back; send bookings are
 * one Lua script per send. While the link is degraded, every node keeps its share of each limit
 * (divided by the node count seen last) in its own table; a waiter moves back to Redis when the
 * link recovers. Waiters of one node are served in order; across nodes there is no queue, only
 * the release notification (and a poll) that sends every waiter to try again.
 */
export function redisThrottle(
  link: RedisLink,
  clock: Clock,
  pollMs = DEFAULT_POLL_MS,
): Throttle & { close(): void } {
  const table = createThrottleTable(clock);
  const slotsKey = (key: string): string => `${link.prefix}throttle:slots:${key}`;
  const rateKey = (key: string): string => `${link.prefix}throttle:rate:${key}`;
  /** Waiters by destination key, in arrival order. */
  const waiting = new Map<string, Waiter[]>();
  /** Destination key by slots key, for release notifications. */
  const byRedisKey = new Map<string, string>();
  const pumping = new Set<string>();
  const again = new Set<string>();

  const share = (limit: number): number => limit / link.nodesSeen();

  const remove = (w: Waiter): void => {
    const list = waiting.get(w.key);
    if (!list) return;
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) {
      waiting.delete(w.key);
      byRedisKey.delete(slotsKey(w.key));
    }
  };

  const finish = (w: Waiter, release: () => void): void => {
    w.done = true;
    remove(w);
    w.settle(release);
  };

  const waitLocally = (w: Waiter): void => {
    const grant = (): void => {
      w.local = null;
      finish(
        w,
        once(() => table.release('self', w.key)),
      );
    };
    w.local = grant;
    if (table.acquire('self', w.key, Math.max(1, Math.floor(share(w.max))), grant)) grant();
  };

  const pumpOnce = async (key: string): Promise<void> => {
    for (const w of [...(waiting.get(key) ?? [])]) {
      if (w.done || w.local) continue;
      if (link.degraded()) {
        waitLocally(w);
        continue;
      }
      const member = link.member();
      let took: boolean;
      try {
        took = await link.take(slotsKey(key), w.max, member);
      } catch {
        waitLocally(w);
        continue;
      }
      if (!took) return;
      if (w.done) {
        // Aborted while the slot was on its way.
        link.give(slotsKey(key), member, true);
        continue;
      }
      // Counted in the node's own table too: should Redis die while this session runs, the
      // node's share of the limit includes it, and no local slot opens beside it.
      table.hold('redis', key);
      finish(
        w,
        once(() => {
          table.release('redis', key);
          link.give(slotsKey(key), member, true);
          void pump(key);
        }),
      );
    }
  };

  // One pass at a time per key; a wake-up during a pass runs one more.
  const pump = async (key: string): Promise<void> => {
    if (pumping.has(key)) {
      again.add(key);
      return;
    }
    pumping.add(key);
    try {
      do {
        again.delete(key);
        await pumpOnce(key);
      } while (again.has(key));
    } finally {
      pumping.delete(key);
    }
  };

  const pumpAll = (): void => {
    for (const key of waiting.keys()) void pump(key);
  };

  link.onReleased((redisKey) => {
    const key = byRedisKey.get(redisKey);
    if (key !== undefined) void pump(key);
  });
  link.onChange((degraded) => {
    if (!degraded) {
      // Back to the cluster's slots: local waits are withdrawn and retried on Redis.
      for (const list of waiting.values())
        for (const w of list) if (w.local && table.cancel(w.local)) w.local = null;
    }
    pumpAll();
  });
  const poll = setInterval(pumpAll, pollMs);
  poll.unref();

  return {
    acquire(key, max, signal) {
      if (signal.aborted) return Promise.resolve(null);
      return new Promise((resolve) => {
        const onAbort = (): void => {
          if (w.done) return;
          w.done = true;
          remove(w);
          if (w.local) table.cancel(w.local);
          resolve(null);
        };
        const w: Waiter = {
          key,
          max,
          local: null,
          done: false,
          settle: (release) => {
            signal.removeEventListener('abort', onAbort);
            resolve(release);
          },
        };
        signal.addEventListener('abort', onAbort, { once: true });
        let list = waiting.get(key);
        if (!list) {
          waiting.set(key, (list = []));
          byRedisKey.set(slotsKey(key), key);
        }
        list.push(w);
        void pump(key);
      });
    },
    async reserve(key, ratePerSecond) {
      if (!link.degraded()) {
        try {
          const wait = Number(await link.run(BOOK, [rateKey(key)], [1000 / ratePerSecond]));
          return clock.now() + wait;
        } catch {
          // Degraded now: this send is booked on the node's share below.
        }
      }
      return table.reserve(key, share(ratePerSecond));
    },
    close() {
      clearInterval(poll);
    },
  };
}
