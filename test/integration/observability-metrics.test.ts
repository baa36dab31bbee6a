import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { cli, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { interopTool } from '../helpers/interop.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

const promtool = interopTool('/usr/bin/promtool', 'prometheus');

async function submit(port: number, to: string, subject: string): Promise<string> {
  const c = await RawSmtp.connect(port);
  await c.login('app', 'pw');
  await c.command('MAIL FROM:<sender@example.com>');
  expect((await c.command(`RCPT TO:<${to}>`)).code).toBe(250);
  const r = await c.data(`From: sender@example.com\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\nHello\r\n`);
  c.close();
  expect(r.code).toBe(250);
  return /queued as (\S+)/.exec(r.text)![1]!;
}

/** Value of one sample in a Prometheus text exposition (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(',') : [];
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return 0;
}

describe('metrics after real traffic', () => {
  let routed: Routed | undefined;
  let sink: Sink;
  let t: TestDir;
  let daemon: Daemon;
  const deferred = new Set<string>();
  const ids = new Map<string, string>();

  const scrape = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${daemon.ports.http}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  beforeAll(async () => {
    routed = await startRoutedDaemon({
      toml: '[delivery]\npoll_interval = "100ms"\n\n[delivery.default]\nretry = ["300ms"]',
      sink: {
        rcpt: (a) => {
          if (a.startsWith('bad@'))
            return { code: 550, text: '5.1.1 <bad@dest.test>: Recipient address rejected: User unknown' };
          // Each slow-* recipient is deferred once, then accepted.
          if (a.startsWith('slow-') && !deferred.has(a)) {
            deferred.add(a);
            return { code: 451, text: '4.7.1 Greylisted, try again later' };
          }
          return undefined;
        },
      },
      // The DSN for bad@ goes to sender@example.com; held here, it stays out of the counters.
      prepare: (dir) => expect(cli(dir, ['queue', 'suspend', 'example.com']).status).toBe(0),
    });
    ({ sink, t, daemon } = routed);
  });

  afterAll(async () => {
    await routed?.stop();
  });

  it('counts exactly the traffic sent: 10 delivered (2 after a deferral), 2 deferred, 1 bounced', async () => {
    const before = await scrape();
    expect(sample(before, 'petrel_recipient_outcomes_total', { outcome: 'delivered' })).toBe(0);
    const rcpts = [
      ...Array.from({ length: 8 }, (_, i) => `ok-${i}@dest.test`),
      'slow-1@dest.test',
      'slow-2@dest.test',
      'bad@dest.test',
    ];
    for (const r of rcpts) ids.set(r, await submit(daemon.ports.submission, r, `to ${r}`));
    await until('10 deliveries', async () => sink.accepted().length >= 10);
    const text = await until('outcomes recorded', async () => {
      const s = await scrape();
      return (
        sample(s, 'petrel_recipient_outcomes_total', { outcome: 'delivered' }) >= 10 &&
        sample(s, 'petrel_bounces_total', { category: 'hard', reason: 'userunknown' }) >= 1 &&
        s
      );
    });
    // Every recipient in its final state (the held DSN aside): no transition is still to come.
    const spool = openSpool(t.dataDir);
    await until('every recipient to be final', async () => {
      const c = await spool.queue.counts();
      return c.delivered === 10 && c.bounced === 1 && c.queued === 1 && c.inflight === 0;
    });
    await spool.close();
    const after = await until('the counters to catch up', async () => {
      const s = await scrape();
      return sample(s, 'petrel_delivery_attempt_seconds_count', {}) >= 13 && s;
    });
    const at = (name: string, labels: Record<string, string> = {}): number => sample(after, name, labels);
    expect(at('petrel_recipient_outcomes_total', { outcome: 'delivered' })).toBe(10);
    expect(at('petrel_recipient_outcomes_total', { outcome: 'deferred' })).toBe(2);
    expect(at('petrel_recipient_outcomes_total', { outcome: 'bounced' })).toBe(1);
    for (const o of ['expired', 'suppressed', 'cancelled'])
      expect(at('petrel_recipient_outcomes_total', { outcome: o })).toBe(0);
    expect(at('petrel_messages_received_total', { listener: 'submission' })).toBe(11);
    expect(at('petrel_bounces_total', { category: 'hard', reason: 'userunknown' })).toBe(1);
    expect(at('petrel_submission_seconds_count')).toBe(11);
    // 11 first attempts and 2 retries.
    expect(at('petrel_delivery_attempt_seconds_count')).toBe(13);
    // Only the held DSN is still queued.
    expect(at('petrel_queue_recipients', { domain: 'example.com' })).toBe(1);
    expect(at('petrel_queue_recipients', { domain: 'dest.test' })).toBe(0);
    expect(at('petrel_spool_bytes')).toBeGreaterThan(0);
    // Process metrics under the names dashboards expect.
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    expect(text).not.toContain('petrel_process_');
    // No address, nor anything that looks like one, in what Prometheus stores.
    expect(after).not.toContain('@');
  });

  it.skipIf(!promtool.available)(
    `passes promtool check metrics on the scrape (${promtool.available ? 'promtool' : promtool.reason})`,
    async () => {
      const text = await scrape();
      const r = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    },
  );

  it('shows the delivery log with events tail: addresses only in --json', () => {
    const human = cli(t, ['events', 'tail', '--limit', '100']);
    expect(human.status).toBe(0);
    const lines = human.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(11 + 13);
    expect(human.stdout).not.toContain('@');
    expect(human.stdout).toMatch(
      /delivery\s+rcpt#\d+ {2}dest\.test {2}attempt 1 {2}mx 127\.0\.0\.1 {2}250 2\.0\.0/,
    );
    expect(human.stdout).toMatch(
      /bounce\s+rcpt#\d+ {2}dest\.test .*550 5\.1\.1 <\[address\]>: Recipient address rejected/,
    );

    const json = cli(t, ['--json', 'events', 'tail', '--message', ids.get('slow-1@dest.test')!]);
    expect(json.status).toBe(0);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e['type'])).toEqual(['reception', 'transient_failure', 'delivery']);
    expect(events[1]).toMatchObject({
      recipient: 'slow-1@dest.test',
      domain: 'dest.test',
      attempt: 1,
      reply: { code: 451, enhanced: '4.7.1' },
    });
    expect(events[2]).toMatchObject({
      msgId: ids.get('slow-1@dest.test'),
      recipient: 'slow-1@dest.test',
      attempt: 2,
      mx: '127.0.0.1',
      reply: { code: 250 },
    });
    for (const e of events) expect(typeof e['id']).toBe('number');
    expect(new Date(events[0]!['at'] as string).getTime()).toBeGreaterThan(0);
  });

  it('follows new events with events tail --follow until interrupted', async () => {
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../helpers/daemon.js');
    const child = spawn(
      process.execPath,
      [BIN, '--config', t.configPath, '--json', 'events', 'tail', '--follow', '--limit', '1'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // The latest existing event printed means the follower is running: no guess at its start-up time.
    await until('the follower to start', async () => out.includes('\n'));
    const id = await submit(daemon.ports.submission, 'ok-late@dest.test', 'late');
    const lines = await until('followed events', async () => {
      const l = out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((x) => JSON.parse(x) as Record<string, unknown>)
        .filter((e) => e['msgId'] === id);
      return l.some((e) => e['type'] === 'delivery') && l;
    });
    expect(lines.map((e) => [e['msgId'], e['type']])).toEqual([
      [id, 'reception'],
      [id, 'delivery'],
    ]);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});

describe('/metrics behind a bearer token read from metrics_token_file', () => {
  let t: TestDir;
  let daemon: Daemon;
  let tokenFile: string;

  beforeAll(async () => {
    t = makeTestDir('[http]\nlisten = "127.0.0.1:0"\nmetrics_token_file = "TOKEN_FILE"\n');
    tokenFile = join(t.dir, 'metrics-token');
    writeFileSync(tokenFile, 'first-token-0123456789\n', { mode: 0o600 });
    writeFileSync(t.configPath, readFileSync(t.configPath, 'utf8').replace('TOKEN_FILE', tokenFile));
    daemon = await startDaemon(t);
  });

  afterAll(async () => {
    await daemon?.stop();
    t?.cleanup();
  });

  const status = async (authorization?: string): Promise<number> =>
    (
      await fetch(`http://127.0.0.1:${daemon.ports.http}/metrics`, {
        headers: authorization === undefined ? {} : { authorization },
      })
    ).status;

  it('answers 401 without the token or with a wrong one, and 200 with it', async () => {
    expect(await status()).toBe(401);
    expect(await status('Bearer first-token-012345678')).toBe(401);
    expect(await status('Bearer first-token-01234567890')).toBe(401);
    expect(await status('first-token-0123456789')).toBe(401);
    expect(await status('Bearer first-token-0123456789')).toBe(200);
  });

  it('re-reads the file on SIGHUP', async () => {
    writeFileSync(tokenFile, 'second-token-0123456789\n');
    const from = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    await until('the reload', async () =>
      daemon.logs.slice(from).some((l) => /^configuration reloaded/.test(l.msg)),
    );
    expect(await status('Bearer first-token-0123456789')).toBe(401);
    expect(await status('Bearer second-token-0123456789')).toBe(200);
  });
});
