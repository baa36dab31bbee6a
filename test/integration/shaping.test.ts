import { afterAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { startDaemon } from '../helpers/daemon.js';
import { startRoutedDaemon } from '../helpers/routed.js';
import type { Sink } from '../helpers/sink.js';
import { until } from '../helpers/until.js';
import { submitMany as submitAll } from '../helpers/submit.js';

const submitMany = (port: number, domain: string, count: number, tag: string, sessions = 1) =>
  submitAll(port, domain, count, tag, sessions);

function subjects(sink: Sink, tag: string): string[] {
  return sink.messages
    .map((m) => /Subject: (\S+ \d+)\r\n/.exec(m.body.toString())?.[1] ?? '')
    .filter((s) => s.startsWith(`${tag} `));
}

describe('traffic shaping and crash recovery', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  const setup = async (shapingToml: string) => {
    const times: number[] = [];
    const r = await startRoutedDaemon({
      domains: ['shaped.test'],
      toml: `[delivery.domain."shaped.test"]\n${shapingToml}`,
      sink: {
        data: () => {
          times.push(Date.now());
          return undefined;
        },
      },
    });
    cleanups.push(() => r.stop());
    return { sink: r.sink, t: r.t, daemon: r.daemon, times };
  };

  it('never opens more than max_connections and sends at most messages_per_connection per session', async () => {
    const { sink, daemon } = await setup('max_connections = 2\nmessages_per_connection = 10');
    await submitMany(daemon.ports.submission, 'shaped.test', 200, 'conn', 4);
    await until('200 deliveries', () => subjects(sink, 'conn').length >= 200, 30_000);
    // Both allowed connections are used, and never a third.
    expect(sink.maxConcurrent).toBe(2);
    const perSession = new Map<string, number>();
    for (const m of sink.messages) perSession.set(m.sessionId, (perSession.get(m.sessionId) ?? 0) + 1);
    expect(Math.max(...perSession.values())).toBeLessThanOrEqual(10);
    expect(perSession.size).toBeGreaterThanOrEqual(20);
    expect(new Set(subjects(sink, 'conn')).size).toBe(200);
  }, 60_000);

  it('keeps to the configured rate within 10%', async () => {
    const { sink, daemon, times } = await setup('rate = "600/min"');
    await submitMany(daemon.ports.submission, 'shaped.test', 31, 'rate', 4);
    await until('31 deliveries', () => subjects(sink, 'rate').length >= 31, 20_000);
    const seconds = (times[times.length - 1]! - times[0]!) / 1000;
    const rate = (times.length - 1) / seconds;
    expect(rate).toBeGreaterThan(9);
    expect(rate).toBeLessThan(11);
  }, 40_000);

  it('after SIGKILL during delivery of 500 messages, delivers every one at least once and none more than twice', async () => {
    const { sink, t, daemon } = await setup('max_connections = 4');
    // Suspended while they are submitted, so that the kill lands in the middle of delivery.
    const spool = openSpool(t.dataDir);
    await spool.queue.suspend('shaped.test', 'test');
    await submitMany(daemon.ports.submission, 'shaped.test', 500, 'kill', 8);
    await spool.queue.resume('shaped.test');
    await spool.close();
    await until('100 deliveries', () => subjects(sink, 'kill').length >= 100, 20_000);
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    const before = subjects(sink, 'kill').length;
    expect(before).toBeLessThan(500);
    const restarted = await startDaemon(t);
    cleanups.push(async () => void (await restarted.stop()));
    await until('all 500 after restart', () => new Set(subjects(sink, 'kill')).size >= 500, 30_000);
    const counts = new Map<string, number>();
    for (const s of subjects(sink, 'kill')) counts.set(s, (counts.get(s) ?? 0) + 1);
    expect(counts.size).toBe(500);
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
    const check = openSpool(t.dataDir);
    const left = await until('the queue to empty', async () => {
      const c = await check.queue.counts();
      return c.queued + c.inflight === 0 && c;
    });
    await check.close();
    expect(left.delivered).toBe(500);
  }, 90_000);
});
