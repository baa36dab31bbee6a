import type { Logger } from '../logging/index.js';
import type { Throttle } from '../queue/index.js';
import { systemClock, type Clock, type SharedCounters } from '../shared/index.js';
import { redisCounters } from './redis-counters.js';
import { openRedisLink, type RedisLinkTimings } from './redis-link.js';
import { DEFAULT_POLL_MS, redisThrottle } from './redis-throttle.js';

export interface RedisShapingOptions extends RedisLinkTimings {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`). */
  readonly url: string;
  /** This node's name, unique in the cluster: it registers under it and names its slots. */
  readonly node: string;
  /** Prefix of every key and channel (default "petrel:"); clusters sharing one Redis differ here. */
  readonly prefix?: string;
  readonly logger: Logger;
  /** The caller's clock: send times come back on it (default: the system clock). */
  readonly clock?: Clock;
  /** Node count to divide limits by if Redis is unreachable before it was ever reached (default 1). */
  readonly assumeNodes?: number;
  /** How often a waiting acquire looks again without a release notification (default 500 ms). */
  readonly pollMs?: number;
}

/**
 * Cluster-wide shaping for one node. `throttle` and `counters` have the same contracts as the
 * node's own (localThrottle, localCounters), with limits shared by every node on the Redis.
 *
 * - Connection slots (`acquire`, `tryTake`) are members of a sorted set scored by their expiry
 *   (`slotTtlMs`, renewed every third of it while held): the slots of a node that died come
 *   back within the TTL. A release notifies waiting nodes at once (pub/sub); they also poll.
 * - Send bookings (`reserve`) are a Lua script on Redis's own clock (TIME), returned as a delay
 *   and added to `clock`: clock skew between nodes does not change the shared rate.
 * - Every command is bounded by `commandTimeoutMs` and never queued while disconnected. When one
 *   fails the node is degraded: it logs a warning once, `degraded()` is true, and each limit is
 *   divided by `nodesSeen()` and kept by the node alone (counters: the full limit, per node).
 *   The heartbeat (`heartbeatMs`) retries; when it gets through, an info line, and the limits are
 *   the cluster's again. Slots held across the outage are renewed into Redis on recovery.
 *
 * Resolves once the first heartbeat has reached Redis or failed (then it starts degraded);
 * it never rejects for an unreachable server.
 */
export interface RedisShaping {
  readonly throttle: Throttle;
  readonly counters: SharedCounters;
  /** Whether Redis is unreachable and limits are per node (for a metric and readiness). */
  degraded(): boolean;
  /** Nodes in the registry at the last heartbeat that reached Redis, this one included. */
  nodesSeen(): number;
  /** Leaves the registry, stops timers, disconnects. Idempotent. Slots still held lapse after their TTL. */
  close(): Promise<void>;
}

export async function connectRedisShaping(options: RedisShapingOptions): Promise<RedisShaping> {
  const clock = options.clock ?? systemClock;
  const link = openRedisLink(options);
  const throttle = redisThrottle(link, clock, options.pollMs ?? DEFAULT_POLL_MS);
  const counters = redisCounters(link, clock);
  await link.started;
  let closing: Promise<void> | null = null;
  return {
    throttle,
    counters,
    degraded: () => link.degraded(),
    nodesSeen: () => link.nodesSeen(),
    close() {
      closing ??= (async () => {
        throttle.close();
        await link.close();
      })();
      return closing;
    },
  };
}
