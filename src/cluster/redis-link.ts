import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../logging/index.js';
import { GIVE, HEARTBEAT, RENEW, SCRIPTS, TAKE, type Script } from './redis-scripts.js';

/** Timings of the link; every one has a default fit for production. */
export interface RedisLinkTimings {
  /** Longest wait for any one Redis command before the link degrades (default 500 ms). */
  readonly commandTimeoutMs?: number;
  /** A held slot lapses this long after its holder last renewed it (default 30 s; renewed every third). */
  readonly slotTtlMs?: number;
  /** How often the node registers itself and reads the node count, and a degraded link retries (default 1 s). */
  readonly heartbeatMs?: number;
  /** A node that stopped registering leaves the count after this long (default 15 s). */
  readonly nodeTtlMs?: number;
}

export interface RedisLinkOptions extends RedisLinkTimings {
  readonly url: string;
  /** This node's name: unique in the cluster. */
  readonly node: string;
  /** Prefix of every key and channel (default "petrel:"). */
  readonly prefix?: string;
  readonly logger: Logger;
  /** Node count to divide by when Redis is unreachable before it was ever read (default 1). */
  readonly assumeNodes?: number;
}

/**
 * One node's connection to the shaping Redis, shared by the throttle and the counters: commands
 * bounded in time, the degraded state, the node registry, renewal of held slots, and release
 * notifications. Any failed command degrades the link; the next heartbeat that succeeds recovers it.
 */
export interface RedisLink {
  readonly prefix: string;
  degraded(): boolean;
  /** Nodes registered at the last heartbeat that reached Redis (at least 1). */
  nodesSeen(): number;
  /** A slot member no other holder in the cluster uses. */
  member(): string;
  /** Runs `s`; a failure degrades the link and rejects. */
  run(s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown>;
  /** Takes a slot of the sorted set `key` for `member` if fewer than `max` are held; renewed until dropped. */
  take(key: string, max: number, member: string): Promise<boolean>;
  /** Stops renewing and gives back `member` of `key`; `notify` tells waiters of every node. Never rejects. */
  give(key: string, member: string, notify: boolean): void;
  /** Runs a plain command, bounded and degrading like run(). */
  command<T>(fn: (r: Redis) => Promise<T>): Promise<T>;
  /** Called with the key of every slot given back anywhere in the cluster. */
  onReleased(fn: (key: string) => void): void;
  /** Called after the link degrades or recovers. */
  onChange(fn: (degraded: boolean) => void): void;
  /** Resolves after the first heartbeat, whether it reached Redis or not. */
  readonly started: Promise<void>;
  /** Leaves the registry and disconnects. Slots still held are not given back: they lapse. */
  close(): Promise<void>;
}

const DEFAULTS = { commandTimeoutMs: 500, slotTtlMs: 30_000, heartbeatMs: 1000, nodeTtlMs: 15_000 };

export function openRedisLink(options: RedisLinkOptions): RedisLink {
  const t = { ...DEFAULTS, ...definedOnly(options) };
  const prefix = options.prefix ?? 'petrel:';
  const { logger } = options;
  const nodesKey = `${prefix}nodes`;
  const channel = `${prefix}released`;
  const instance = randomUUID().slice(0, 8);
  let seq = 0;

  const base = {
    commandTimeout: t.commandTimeoutMs,
    connectTimeout: Math.max(t.commandTimeoutMs, 1000),
    // A command never waits for a connection: with Redis away it fails at once and the caller
    // shapes with per-node limits instead.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) => Math.min(times * 100, 1000),
  };
  const client = new Redis(options.url, base);
  // The subscriber queues its SUBSCRIBE until connected, however long (nothing waits on it): a
  // subscription is only resubscribed after a reconnect once Redis has confirmed it.
  const subscriber = new Redis(options.url, {
    ...base,
    commandTimeout: undefined,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
  });
  client.on('error', (err: Error) => logger.debug({ err }, 'shaping Redis connection error'));
  subscriber.on('error', (err: Error) => logger.debug({ err }, 'shaping Redis subscriber error'));

  let degraded = false;
  let nodes = Math.max(1, options.assumeNodes ?? 1);
  let closed = false;
  const held = new Map<string, Set<string>>();
  const released: ((key: string) => void)[] = [];
  const changed: ((degraded: boolean) => void)[] = [];

  const degrade = (err: unknown): void => {
    if (degraded || closed) return;
    degraded = true;
    logger.warn(
      { err, nodes, redis: redact(options.url) },
      'shaping Redis unreachable: delivery limits are per node (divided by the node count) until it is back',
    );
    for (const fn of changed) fn(true);
  };

  const recover = (): void => {
    if (!degraded || closed) return;
    degraded = false;
    logger.info({ nodes }, 'shaping Redis reachable again: delivery limits are cluster-wide');
    for (const fn of changed) fn(false);
  };

  const run = async (
    s: Script,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> => {
    try {
      try {
        return await client.evalsha(s.sha, keys.length, ...keys, ...args);
      } catch (err) {
        // A restarted Redis has lost its script cache.
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return await client.eval(s.lua, keys.length, ...keys, ...args);
      }
    } catch (err) {
      degrade(err);
      throw err;
    }
  };

  const renew = async (): Promise<void> => {
    for (const [key, members] of held) {
      if (members.size === 0) continue;
      await run(RENEW, [key], [t.slotTtlMs, ...members]);
    }
  };

  const heartbeat = async (): Promise<void> => {
    const wasDegraded = degraded;
    try {
      nodes = Math.max(1, Number(await run(HEARTBEAT, [nodesKey], [options.node, t.nodeTtlMs])));
    } catch {
      return;
    }
    // Slots held while Redis was away (or lost in its restart) count again before this node
    // takes any more there; when that fails the link stays degraded until the next heartbeat.
    if (wasDegraded) {
      try {
        await renew();
      } catch {
        return;
      }
    }
    recover();
  };

  let beating = false;
  const beat = (): void => {
    if (beating || closed) return;
    beating = true;
    void heartbeat().finally(() => (beating = false));
  };
  const heartbeatTimer = setInterval(beat, t.heartbeatMs);
  heartbeatTimer.unref();
  const renewTimer = setInterval(
    () => {
      if (!degraded) void renew().catch(() => undefined);
    },
    Math.max(100, Math.floor(t.slotTtlMs / 3)),
  );
  renewTimer.unref();

  // A reconnect may be to a Redis that restarted empty, even when no command failed meanwhile:
  // the slots this node holds go back at once, not at the next renewal.
  let connectedBefore = false;
  client.on('ready', () => {
    // Loaded ahead of use: an EVALSHA that timed out (Redis hung) and runs late must not fail
    // there with NOSCRIPT, where no fallback can follow it (a release would then be lost).
    for (const s of SCRIPTS) client.script('LOAD', s.lua).catch(() => undefined);
    if (connectedBefore) void renew().catch(() => undefined);
    connectedBefore = true;
  });

  subscriber.on('message', (ch: string, key: string) => {
    if (ch === channel) for (const fn of released) fn(key);
  });
  subscriber
    .subscribe(channel)
    .catch((err: unknown) => logger.debug({ err }, 'cannot subscribe to releases'));

  const started = (async () => {
    // The first heartbeat waits for the connection, bounded: an unreachable Redis at start-up
    // only means the node starts degraded.
    if (client.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, base.connectTimeout);
        function done(): void {
          clearTimeout(timer);
          client.off('ready', done);
          resolve();
        }
        client.once('ready', done);
      });
    }
    await heartbeat();
  })();

  return {
    prefix,
    degraded: () => degraded,
    nodesSeen: () => nodes,
    member: () => `${options.node}/${instance}/${++seq}`,
    run,
    async take(key, max, member) {
      let ok: boolean;
      try {
        ok = Number(await run(TAKE, [key], [max, member, t.slotTtlMs])) === 1;
      } catch (err) {
        // A TAKE that timed out may still run on a Redis that was only slow; this ZREM follows
        // it on the same connection, so the slot nobody will use does not wait out its TTL.
        run(GIVE, [key], [member, '']).catch(() => undefined);
        throw err;
      }
      if (ok) {
        let set = held.get(key);
        if (!set) held.set(key, (set = new Set()));
        set.add(member);
      }
      return ok;
    },
    give(key, member, notify) {
      const set = held.get(key);
      set?.delete(member);
      if (set?.size === 0) held.delete(key);
      // When this fails the slot lapses at its expiry.
      if (!closed) run(GIVE, [key], [member, notify ? channel : '']).catch(() => undefined);
    },
    async command(fn) {
      try {
        return await fn(client);
      } catch (err) {
        degrade(err);
        throw err;
      }
    },
    onReleased: (fn) => void released.push(fn),
    onChange: (fn) => void changed.push(fn),
    started,
    async close() {
      if (closed) return;
      await started;
      clearInterval(heartbeatTimer);
      clearInterval(renewTimer);
      if (!degraded) await client.zrem(nodesKey, options.node).catch(() => undefined);
      closed = true;
      held.clear();
      await Promise.all([quit(client), quit(subscriber)]);
    },
  };
}

/** QUIT, or a hard disconnect when Redis is away (QUIT would wait for it). */
async function quit(r: Redis): Promise<void> {
  if (r.status !== 'ready') {
    r.disconnect();
    return;
  }
  await r.quit().catch(() => r.disconnect());
}

/** The URL without its password, for a log line. */
function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
