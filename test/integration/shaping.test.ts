import { afterAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type TestDir } from '../helpers/daemon.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';

/** Submits `count` messages over one session, each to one recipient at `domain`. */
async function submitMany(port: number, domain: string, count: number, tag: string): Promise<string[]> {
  const c = await RawSmtp.connect(port);
  await c.login('app', 'pw');
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command(`RCPT TO:<r${i}@${domain}>`);
    const r = await c.data(`From: sender@example.com\r\nSubject: ${tag} ${i}\r\n\r\nbody ${i}\r\n`);
    expect(r.code).toBe(250);
    ids.push(/queued as (\S+)/.exec(r.text)![1]!);
  }
  c.close();
  return ids;
}

function subjects(sink: Sink, tag: string): string[] {
  return sink.messages.map((m) => /Subject: (\S+ \d+)\r\n/.exec(m.body.toString())?.[1] ?? '').filter((s) => s.startsWith(`${tag} `));
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('traffic shaping and crash recovery', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  const setup = async (shapingToml: string) => {
    const times: number[] = [];
    const sink = await startSink({
      data: () => {
        times.push(Date.now());
        return undefined;
      },
    });
    const t: TestDir = makeTestDir(`
[delivery]
poll_interval = "200ms"

[routes."shaped.test"]
host = "127.0.0.1"
port = ${sink.port}

[delivery.domain."shaped.test"]
${shapingToml}
`);
    addUser(t, 'app', ['example.com'], 'pw');
    const daemon = await startDaemon(t);
    cleanups.push(() => t.cleanup(), () => sink.close(), async () => void (await daemon.stop()));
    return { sink, t, daemon, times };
  };

  it('never opens more than max_connections and sends at most messages_per_connection per session', async () => {
    const { sink, daemon } = await setup('max_connections = 2\nmessages_per_connection = 10');
    await submitMany(daemon.ports.submission, 'shaped.test', 200, 'conn');
    await waitFor(() => subjects(sink, 'conn').length >= 200, 30_000, '200 deliveries');
    expect(sink.maxConcurrent).toBeGreaterThanOrEqual(1);
    expect(sink.maxConcurrent).toBeLessThanOrEqual(2);
    const perSession = new Map<string, number>();
    for (const m of sink.messages) perSession.set(m.sessionId, (perSession.get(m.sessionId) ?? 0) + 1);
    expect(Math.max(...perSession.values())).toBeLessThanOrEqual(10);
    expect(perSession.size).toBeGreaterThanOrEqual(20);
    expect(new Set(subjects(sink, 'conn')).size).toBe(200);
  }, 60_000);

  it('keeps to the configured rate within 10%', async () => {
    const { sink, daemon, times } = await setup('rate = "600/min"');
    await submitMany(daemon.ports.submission, 'shaped.test', 31, 'rate');
    await waitFor(() => subjects(sink, 'rate').length >= 31, 20_000, '31 deliveries');
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
    await submitMany(daemon.ports.submission, 'shaped.test', 500, 'kill');
    await spool.queue.resume('shaped.test');
    await spool.close();
    await waitFor(() => subjects(sink, 'kill').length >= 100, 20_000, '100 deliveries');
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    const before = subjects(sink, 'kill').length;
    expect(before).toBeLessThan(500);
    const restarted = await startDaemon(t);
    cleanups.push(async () => void (await restarted.stop()));
    await waitFor(() => new Set(subjects(sink, 'kill')).size >= 500, 30_000, 'all 500 after restart');
    const counts = new Map<string, number>();
    for (const s of subjects(sink, 'kill')) counts.set(s, (counts.get(s) ?? 0) + 1);
    expect(counts.size).toBe(500);
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
    const check = openSpool(t.dataDir);
    let left = await check.queue.counts();
    for (let i = 0; i < 100 && left.queued + left.inflight > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      left = await check.queue.counts();
    }
    await check.close();
    expect(left.queued + left.inflight).toBe(0);
    expect(left.delivered).toBe(500);
  }, 90_000);
});
