import { localCounters, type Clock, type SharedCounters } from '../shared/index.js';
import type { RedisLink } from './redis-link.js';
import { CONSUME, HIT, RAISE } from './redis-scripts.js';

/**
 * The listeners' counters kept for the whole cluster: a client's sessions are slots with an
 * expiry (renewed while held, so a dead node's lapse) and AUTH failures a counter with a TTL.
 * While the link is degraded each node counts on its own, with the full limit: a client may
 * then get it once per node, which beats refusing legitimate sessions. Each call waits at most
 * one bounded command, so a session is never held up by Redis.
 */
export function redisCounters(link: RedisLink, clock: Clock): SharedCounters {
  const local = localCounters(clock);
  const slotsKey = (key: string): string => `${link.prefix}counter:slots:${key}`;
  const hitsKey = (key: string): string => `${link.prefix}counter:hits:${key}`;

  return {
    async tryTake(key, max) {
      if (link.degraded()) return local.tryTake(key, max);
      const member = link.member();
      try {
        if (!(await link.take(slotsKey(key), max, member))) return null;
      } catch {
        return local.tryTake(key, max);
      }
      let done = false;
      return () => {
        if (done) return;
        done = true;
        link.give(slotsKey(key), member, false);
      };
    },
    async hit(key, windowMs) {
      if (!link.degraded()) {
        try {
          return Number(await link.run(HIT, [hitsKey(key)], [windowMs]));
        } catch {
          // Counted on this node below.
        }
      }
      return local.hit(key, windowMs);
    },
    async consume(key, max, windowMs) {
      if (!link.degraded()) {
        try {
          const n = Number(await link.run(CONSUME, [hitsKey(key)], [max, windowMs]));
          return n < 0 ? null : n;
        } catch {
          // Counted on this node below.
        }
      }
      return local.consume(key, max, windowMs);
    },
    async raise(key, floor, windowMs) {
      if (!link.degraded()) {
        try {
          return Number(await link.run(RAISE, [hitsKey(key)], [floor, windowMs]));
        } catch {
          // Raised on this node below.
        }
      }
      return local.raise(key, floor, windowMs);
    },
    async count(key) {
      if (!link.degraded()) {
        try {
          return Number((await link.command((r) => r.get(hitsKey(key)))) ?? 0);
        } catch {
          // This node's own count below.
        }
      }
      return local.count(key);
    },
    async reset(key) {
      await local.reset(key);
      if (link.degraded()) return;
      await link.command((r) => r.del(hitsKey(key))).catch(() => undefined);
    },
  };
}
