import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectRedisShaping, type RedisShaping, type RedisShapingOptions } from '../../src/cluster/index.js';
import { createLogger, silentLogger } from '../../src/logging/index.js';
import { REDIS, startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const never = new AbortController().signal;

let redis: TestRedis;
const open: RedisShaping[] = [];

beforeAll(async () => {
  if (REDIS.available) redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await redis?.stop();
});

/** A node on `url`; every test has its own prefix, so nothing of another test is seen. */
async function node(
  prefix: string,
  name: string,
  extra: Partial<RedisShapingOptions> = {},
): Promise<RedisShaping> {
  const s = await connectRedisShaping({
    url: redis.url,
    node: name,
    prefix,
    logger: silentLogger(),
    ...extra,
  });
  open.push(s);
  return s;
}

const prefix = (): string => `t${randomUUID().slice(0, 8)}:`;

describe.skipIf(!REDIS.available)('cluster-wide shaping on Redis', () => {
  it('lets two nodes together hold at most max connection slots of a destination', async () => {
    const p = prefix();
    const a = await node(p, 'a');
    const b = await node(p, 'b');
    let open = 0;
    let peak = 0;
    let sessions = 0;
    const worker = async (s: RedisShaping): Promise<void> => {
      for (let i = 0; i < 6; i++) {
        const release = await s.throttle.acquire('example.org', 2, never);
        expect(release).not.toBeNull();
        open += 1;
        peak = Math.max(peak, open);
        await sleep(5 + Math.random() * 20);
        open -= 1;
        sessions += 1;
        release!();
      }
    };
    await Promise.all([a, b, a, b, a, b].map(worker));
    expect(sessions).toBe(36);
    expect(peak).toBe(2);
    expect(a.degraded() || b.degraded()).toBe(false);
  });

  it('keeps the booked rate of two nodes within 10% of the target', async () => {
    const p = prefix();
    const nodes = [await node(p, 'a'), await node(p, 'b')];
    const sends: { at: number; node: number }[] = [];
    const start = Date.now();
    const sender = async (n: number): Promise<void> => {
      while (Date.now() - start < 3000) {
        const at = await nodes[n]!.throttle.reserve('rate.example', 20);
        const wait = at - Date.now();
        if (wait > 0) await sleep(wait);
        sends.push({ at: Date.now(), node: n });
      }
    };
    await Promise.all([sender(0), sender(0), sender(1), sender(1)]);
    const times = sends.map((s) => s.at).sort((x, y) => x - y);
    const perSecond = ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!);
    expect(perSecond).toBeGreaterThan(18);
    expect(perSecond).toBeLessThan(22);
    expect(new Set(sends.map((s) => s.node)).size).toBe(2);
  });

  it('gives a dead node’s slot back once its TTL has passed', async () => {
    const p = prefix();
    const dead = await node(p, 'dead', { slotTtlMs: 1500 });
    const live = await node(p, 'live', { slotTtlMs: 1500, pollMs: 100 });
    expect(await dead.throttle.acquire('stuck.example', 1, never)).not.toBeNull();
    // Closed without a release: the slot stays in Redis until its expiry.
    await dead.close();
    const asked = Date.now();
    const release = await live.throttle.acquire('stuck.example', 1, never);
    const waited = Date.now() - asked;
    expect(release).not.toBeNull();
    expect(waited).toBeGreaterThan(1000);
    expect(waited).toBeLessThan(3000);
  });

  it('keeps a slot its holder renews, however long it is held', async () => {
    const p = prefix();
    const a = await node(p, 'a', { slotTtlMs: 600 });
    const b = await node(p, 'b', { slotTtlMs: 600, pollMs: 50 });
    const held = await a.throttle.acquire('long.example', 1, never);
    const stop = new AbortController();
    const waiting = b.throttle.acquire('long.example', 1, stop.signal);
    let got = false;
    void waiting.then((r) => (got = r !== null));
    // Three TTLs, in which the waiter polled some 30 times: a slot that were not renewed
    // would have lapsed twice over.
    await sleep(1800);
    expect(got).toBe(false);
    held!();
    expect(await waiting).not.toBeNull();
  });

  it('wakes a waiter on another node as soon as the slot is released', async () => {
    const p = prefix();
    const a = await node(p, 'a');
    // No polling to speak of: only the release notification can wake it in time.
    const b = await node(p, 'b', { pollMs: 60_000 });
    const held = await a.throttle.acquire('wake.example', 1, never);
    const waiting = b.throttle.acquire('wake.example', 1, never);
    await sleep(50);
    const released = Date.now();
    held!();
    expect(await waiting).not.toBeNull();
    expect(Date.now() - released).toBeLessThan(200);
  });

  it('resolves an aborted wait with null and leaves no slot taken', async () => {
    const p = prefix();
    const a = await node(p, 'a');
    const b = await node(p, 'b');
    const held = await a.throttle.acquire('abort.example', 1, never);
    const stop = new AbortController();
    const waiting = b.throttle.acquire('abort.example', 1, stop.signal);
    stop.abort();
    expect(await waiting).toBeNull();
    expect(await b.throttle.acquire('abort.example', 1, AbortSignal.abort())).toBeNull();
    held!();
    // The slot is free for anyone: the aborted waiter took none.
    expect(await a.throttle.acquire('abort.example', 1, AbortSignal.timeout(1000))).not.toBeNull();
  });

  it('shares session slots and failure counts between nodes', async () => {
    const p = prefix();
    const a = await node(p, 'a');
    const b = await node(p, 'b');
    const first = await a.counters.tryTake('ip:192.0.2.1', 2);
    const second = await b.counters.tryTake('ip:192.0.2.1', 2);
    expect(first).not.toBeNull();
    expect(second).not.toBeNull();
    expect(await b.counters.tryTake('ip:192.0.2.1', 2)).toBeNull();
    first!();
    first!();
    // The release goes over a's connection, the take over b's: b sees it a moment later.
    await until('the slot given back', () => b.counters.tryTake('ip:192.0.2.1', 2), 2000);
    expect(await b.counters.tryTake('ip:192.0.2.1', 2)).toBeNull();

    expect(await a.counters.hit('auth:192.0.2.1', 60_000)).toBe(1);
    expect(await b.counters.hit('auth:192.0.2.1', 60_000)).toBe(2);
    expect(await a.counters.count('auth:192.0.2.1')).toBe(2);
    await b.counters.reset('auth:192.0.2.1');
    expect(await a.counters.count('auth:192.0.2.1')).toBe(0);

    await a.counters.hit('auth:192.0.2.2', 200);
    expect(await b.counters.count('auth:192.0.2.2')).toBe(1);
    await until('the window to close', async () => (await b.counters.count('auth:192.0.2.2')) === 0, 2000);
  });

  it('consumes a window’s units and raises counts once for all nodes', async () => {
    const p = prefix();
    const a = await node(p, 'a');
    const b = await node(p, 'b');
    const taken = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).counters.consume('rate:1', 6, 60_000)),
    );
    // Racing nodes never both get the last unit: exactly six counted, the rest refused.
    expect(taken.filter((n) => n !== null).sort((x, y) => x! - y!)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await a.counters.count('rate:1')).toBe(6);

    expect(await a.counters.raise('daily:1', 4, 60_000)).toBe(4);
    expect(await b.counters.raise('daily:1', 4, 60_000)).toBe(4);
    expect(await b.counters.consume('daily:1', 5, 60_000)).toBe(5);
    expect(await a.counters.raise('daily:1', 2, 60_000)).toBe(5);
    expect(await a.counters.consume('daily:1', 5, 60_000)).toBeNull();

    await a.counters.consume('short', 5, 200);
    await b.counters.raise('short', 3, 60_000);
    // A raise keeps the window already open.
    await until('the window to close', async () => (await a.counters.count('short')) === 0, 2000);
  });

  it('counts the nodes that heartbeat and drops one that leaves', async () => {
    const p = prefix();
    const a = await node(p, 'a', { heartbeatMs: 100 });
    const b = await node(p, 'b', { heartbeatMs: 100 });
    await until('both nodes seen', () => a.nodesSeen() === 2 && b.nodesSeen() === 2, 3000);
    await b.close();
    await until('one node left', () => a.nodesSeen() === 1, 3000);
  });
});

describe.skipIf(!REDIS.available)('shaping when Redis goes away', () => {
  it('starts degraded when Redis cannot be reached, and still shapes on the node', async () => {
    const asked = Date.now();
    // Port 1 on loopback: connection refused.
    const s = await connectRedisShaping({
      url: 'redis://127.0.0.1:1',
      node: 'lonely',
      logger: silentLogger(),
    });
    open.push(s);
    expect(Date.now() - asked).toBeLessThan(3000);
    expect(s.degraded()).toBe(true);
    expect(s.nodesSeen()).toBe(1);
    const release = await s.throttle.acquire('alone.example', 1, never);
    expect(release).not.toBeNull();
    expect(await s.throttle.acquire('alone.example', 1, AbortSignal.timeout(200))).toBeNull();
    release!();
    expect(await s.throttle.acquire('alone.example', 1, never)).not.toBeNull();
    expect(await s.counters.hit('auth:y', 60_000)).toBe(1);
  });

  let own: TestRedis;
  beforeAll(async () => {
    own = await startRedis();
  });
  afterAll(async () => {
    await own.stop();
  });

  it('falls back to per-node limits divided by the node count, and back when Redis returns', async () => {
    const lines: { level: string; msg: string }[] = [];
    const logger = createLogger({
      level: 'info',
      version: 'test',
      destination: { write: (l: string) => void lines.push(JSON.parse(l) as { level: string; msg: string }) },
    });
    const timings = { heartbeatMs: 200, commandTimeoutMs: 300, url: own.url, prefix: 'k:' };
    const a = await connectRedisShaping({ ...timings, node: 'a', logger });
    const b = await connectRedisShaping({ ...timings, node: 'b', logger: silentLogger() });
    open.push(a, b);
    await until('both nodes seen', () => a.nodesSeen() === 2, 3000);
    expect(a.degraded()).toBe(false);

    await own.kill();
    const fast = async <T>(p: Promise<T>): Promise<T> => {
      const asked = Date.now();
      const v = await p;
      expect(Date.now() - asked).toBeLessThan(500);
      return v;
    };
    // max 4 over 2 nodes: 2 each, kept by the node alone.
    const one = await fast(a.throttle.acquire('down.example', 4, never));
    const two = await fast(a.throttle.acquire('down.example', 4, never));
    expect(one).not.toBeNull();
    expect(two).not.toBeNull();
    expect(a.degraded()).toBe(true);
    const third = a.throttle.acquire('down.example', 4, AbortSignal.timeout(300));
    expect(await third).toBeNull();
    // 20/s over 2 nodes: 10/s each.
    const r1 = await fast(a.throttle.reserve('down.example', 20));
    const r2 = await fast(a.throttle.reserve('down.example', 20));
    expect(r2 - r1).toBe(100);
    expect(await fast(a.counters.hit('auth:x', 60_000))).toBe(1);
    expect(await fast(a.counters.tryTake('ip:x', 1))).not.toBeNull();
    expect(await fast(b.throttle.acquire('down.example', 4, never))).not.toBeNull();
    expect(b.degraded()).toBe(true);
    one!();
    two!();

    await own.restart();
    await until('recovery', () => !a.degraded() && !b.degraded(), 5000);
    // Cluster-wide again: the full 4 slots, and sends spaced at 20/s.
    const slots = await Promise.all([1, 2, 3, 4].map(() => fast(a.throttle.acquire('up.example', 4, never))));
    expect(slots.every((s) => s !== null)).toBe(true);
    const s1 = await fast(b.throttle.reserve('up.example', 20));
    const s2 = await fast(a.throttle.reserve('up.example', 20));
    expect(s2 - s1).toBeGreaterThan(35);
    expect(s2 - s1).toBeLessThan(65);

    const said = lines.filter((l) => l.msg.startsWith('shaping Redis'));
    expect(said.map((l) => l.level)).toEqual(['warn', 'info']);
  });

  it('counts the sessions Redis granted before it died against the node’s own share', async () => {
    const timings = { heartbeatMs: 200, commandTimeoutMs: 300, url: own.url, prefix: 'held:' };
    const a = await connectRedisShaping({ ...timings, node: 'a', logger: silentLogger() });
    const b = await connectRedisShaping({ ...timings, node: 'b', logger: silentLogger() });
    open.push(a, b);
    await until('both nodes seen', () => a.nodesSeen() === 2, 3000);
    // max 4 over 2 nodes: a's share is 2, and it already has 2 sessions from Redis.
    const one = await a.throttle.acquire('held.example', 4, never);
    const two = await a.throttle.acquire('held.example', 4, never);
    expect(one).not.toBeNull();
    expect(two).not.toBeNull();
    await own.kill();
    await until('degraded', () => a.degraded(), 3000);
    expect(await a.throttle.acquire('held.example', 4, AbortSignal.timeout(400))).toBeNull();
    // One of them ends: its place is the node's again.
    one!();
    expect(await a.throttle.acquire('held.example', 4, AbortSignal.timeout(400))).not.toBeNull();
    two!();
    await own.restart();
    await until('recovery', () => !a.degraded() && !b.degraded(), 5000);
  });

  it('bounds every call when Redis hangs, and leaves no slot behind when it answers again', async () => {
    const timings = { heartbeatMs: 200, commandTimeoutMs: 300, url: own.url, prefix: 'h:' };
    const a = await connectRedisShaping({ ...timings, node: 'a', logger: silentLogger() });
    const b = await connectRedisShaping({ ...timings, node: 'b', logger: silentLogger() });
    open.push(a, b);
    await until('both nodes seen', () => a.nodesSeen() === 2, 3000);
    own.pause();
    try {
      const asked = Date.now();
      const slot = await a.throttle.acquire('hung.example', 1, never);
      expect(slot).not.toBeNull();
      expect(Date.now() - asked).toBeLessThan(800);
      expect(a.degraded()).toBe(true);
      const counted = Date.now();
      expect(await b.counters.tryTake('ip:z', 1)).not.toBeNull();
      expect(Date.now() - counted).toBeLessThan(800);
      slot!();
    } finally {
      own.resume();
    }
    await until('recovery', () => !a.degraded() && !b.degraded(), 5000);
    // The TAKE that timed out ran late on Redis and was given back behind it.
    expect(await b.throttle.acquire('hung.example', 1, AbortSignal.timeout(1000))).not.toBeNull();
  });

  it('counts a slot held across a Redis restart again once Redis is back', async () => {
    const timings = { heartbeatMs: 200, commandTimeoutMs: 300, url: own.url, prefix: 'r:' };
    const a = await connectRedisShaping({ ...timings, node: 'a', logger: silentLogger() });
    const b = await connectRedisShaping({ ...timings, node: 'b', logger: silentLogger() });
    open.push(a, b);
    const held = await a.throttle.acquire('kept.example', 1, never);
    expect(held).not.toBeNull();
    await own.kill();
    // The restarted Redis is empty; the holder puts its slot back when it sees Redis again.
    await own.restart();
    // Both nodes count on Redis again when a hit of one is seen by the other.
    let probe = 0;
    await until(
      'both nodes on Redis',
      async () => {
        const key = `probe:${++probe}`;
        await a.counters.hit(key, 60_000);
        return (await b.counters.hit(key, 60_000)) === 2;
      },
      5000,
    );
    expect(await b.throttle.acquire('kept.example', 1, AbortSignal.timeout(400))).toBeNull();
    held!();
    expect(await b.throttle.acquire('kept.example', 1, AbortSignal.timeout(2000))).not.toBeNull();
  });
});
