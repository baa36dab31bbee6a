import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { interopTool } from '../helpers/interop.js';
import { POSTGRES, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { REDIS, startRedis, type TestRedis } from '../helpers/redis.js';
import { RawSmtp, type Reply } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

const PASSWORD = 'correct horse battery';
const PROMTOOL = interopTool('/usr/bin/promtool', 'prometheus');

function addAccount(t: TestDir, name: string, ...limits: string[]): void {
  const r = cli(t, ['user', 'add', name, '--allow-from', 'shop.example', ...limits], `${PASSWORD}\n`);
  if (r.status !== 0) throw new Error(`user add failed: ${r.stderr}`);
}

const MESSAGE = 'From: news@shop.example\r\nTo: list@dest.test\r\nSubject: limits\r\n\r\nHello.\r\n';

async function session(daemon: Daemon, account: string): Promise<RawSmtp> {
  const c = await RawSmtp.connect(daemon.ports.submission);
  await c.login(account, PASSWORD);
  return c;
}

async function mailFrom(c: RawSmtp): Promise<void> {
  const mail = await c.command('MAIL FROM:<news@shop.example>');
  if (mail.code !== 250) throw new Error(`MAIL FROM refused: ${mail.text}`);
}

/** MAIL FROM (unless `open`), then each RCPT TO in turn; the replies to the RCPTs. */
async function recipients(c: RawSmtp, from: number, count: number, open = false): Promise<Reply[]> {
  if (!open) await mailFrom(c);
  const replies: Reply[] = [];
  for (let i = from; i < from + count; i++) replies.push(await c.command(`RCPT TO:<r${i}@dest.test>`));
  return replies;
}

/** The value of one sample of the scrape, or undefined when it has none. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m?.[1] === name && m[2]!.split(',').sort().join(',') === want) return Number(m[3]);
  }
  return undefined;
}

async function scrape(daemon: Daemon): Promise<string> {
  return (await fetch(`http://127.0.0.1:${daemon.ports.http}/metrics`)).text();
}

/**
 * Each session's transaction opened first, then all their recipients at once: a session that
 * came late would otherwise find the limit reached already at MAIL FROM.
 */
async function together(sessions: readonly RawSmtp[], count: number): Promise<Reply[]> {
  await Promise.all(sessions.map(mailFrom));
  return (await Promise.all(sessions.map((c, i) => recipients(c, i * 10, count, true)))).flat();
}

describe('per-account limits on one node', () => {
  let t: TestDir;
  let daemon: Daemon;
  beforeAll(async () => {
    t = makeTestDir();
    addAccount(t, 'daily', '--daily', '5');
    addAccount(t, 'fast', '--rate', '5/s');
    addAccount(t, 'free');
    daemon = await startDaemon(t);
  });
  afterAll(async () => {
    await daemon?.stop();
    t?.cleanup();
  });

  it('accepts five recipients of an account with --daily 5 and answers the sixth 451 4.7.1, then refuses MAIL FROM', async () => {
    const c = await session(daemon, 'daily');
    const replies = await recipients(c, 0, 6);
    expect(replies.slice(0, 5).map((r) => r.code)).toEqual([250, 250, 250, 250, 250]);
    expect(replies[5]!.text).toMatch(/^451 4\.7\.1 .*daily quota/);
    // The five accepted recipients are queued: the quota cuts the message, it does not refuse it.
    expect((await c.data(MESSAGE)).code).toBe(250);
    const again = await c.command('MAIL FROM:<news@shop.example>');
    expect(again.text).toMatch(/^451 4\.7\.1 .*daily quota/);
    c.close();
  });

  it('gives a raised quota at once, and keeps the day’s count across a restart', async () => {
    expect(cli(t, ['user', 'set', 'daily', '--daily', '7']).status).toBe(0);
    const c = await session(daemon, 'daily');
    const replies = await recipients(c, 10, 3);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 451]);
    expect((await c.data(MESSAGE)).code).toBe(250);
    c.close();

    await daemon.stop();
    daemon = await startDaemon(t);
    const after = await session(daemon, 'daily');
    expect((await after.command('MAIL FROM:<news@shop.example>')).text).toMatch(/^451 4\.7\.1 .*daily quota/);
    after.close();
    // Cleared, the account sends again.
    expect(cli(t, ['user', 'set', 'daily', '--daily', 'none']).status).toBe(0);
    const cleared = await session(daemon, 'daily');
    expect((await recipients(cleared, 20, 3)).map((r) => r.code)).toEqual([250, 250, 250]);
    expect((await cleared.data(MESSAGE)).code).toBe(250);
    cleared.close();
  });

  it('refuses recipients of an account with --rate 5/s past five a second, while another account sends freely', async () => {
    const fast = await session(daemon, 'fast');
    const free = await session(daemon, 'free');
    const started = Date.now();
    const [burst, other] = await Promise.all([recipients(fast, 0, 20), recipients(free, 0, 20)]);
    const elapsed = Date.now() - started;
    // The window opens with the first recipient: all twenty fell in it.
    expect(elapsed).toBeLessThan(1000);
    expect(burst.filter((r) => r.code === 250)).toHaveLength(5);
    const refused = burst.filter((r) => r.code !== 250);
    expect(refused).toHaveLength(15);
    for (const r of refused) expect(r.text).toMatch(/^451 4\.7\.1 .*rate limit/);
    expect(other.every((r) => r.code === 250)).toBe(true);
    free.close();

    // Sent steadily for a little under four seconds, the accepted rate is the limit's. It starts
    // with a fresh window, once the burst's has closed.
    await until('the burst’s window to close', async () => {
      const r = await fast.command('RCPT TO:<probe@dest.test>');
      return r.code === 250;
    });
    const from = Date.now();
    let accepted = 1;
    for (let i = 0; Date.now() - from < 3900; i++) {
      const r = await fast.command(`RCPT TO:<s${i}@dest.test>`);
      if (r.code === 250) accepted += 1;
      await new Promise((res) => setTimeout(res, 10));
    }
    const seconds = (Date.now() - from) / 1000;
    expect(accepted).toBeGreaterThanOrEqual(18);
    expect(accepted).toBeLessThanOrEqual(20);
    expect(accepted / Math.ceil(seconds)).toBeLessThanOrEqual(5);
    fast.close();
  });

  it('shows the refusals by account and reason, and the quota used, in the metrics', async () => {
    expect(cli(t, ['user', 'set', 'daily', '--daily', '50']).status).toBe(0);
    const text = await scrape(daemon);
    // Since the restart: the rate test's refusals, and the MAIL FROM refused at once after it.
    expect(
      sample(text, 'petrel_account_limit_refusals_total', { account: 'fast', reason: 'rate' }),
    ).toBeGreaterThan(15);
    expect(
      sample(text, 'petrel_account_limit_refusals_total', { account: 'free', reason: 'rate' }),
    ).toBeUndefined();
    expect(sample(text, 'petrel_account_limit_refusals_total', { account: 'daily', reason: 'daily' })).toBe(
      1,
    );
    expect(sample(text, 'petrel_account_daily_quota', { account: 'daily' })).toBe(50);
    // 5 + 2 queued before the restart, 3 while the account had no quota: a new quota counts them all.
    expect(sample(text, 'petrel_account_daily_recipients', { account: 'daily' })).toBe(10);
    expect(sample(text, 'petrel_account_daily_quota', { account: 'fast' })).toBeUndefined();

    const c = await session(daemon, 'daily');
    await recipients(c, 30, 1);
    expect(cli(t, ['user', 'set', 'daily', '--daily', '11']).status).toBe(0);
    c.close();
    const d = await session(daemon, 'daily');
    expect((await d.command('MAIL FROM:<news@shop.example>')).code).toBe(451);
    d.close();
    const later = await scrape(daemon);
    expect(sample(later, 'petrel_account_limit_refusals_total', { account: 'daily', reason: 'daily' })).toBe(
      2,
    );
    expect(sample(later, 'petrel_account_daily_recipients', { account: 'daily' })).toBe(11);
  });

  it.skipIf(!PROMTOOL.available)('passes promtool check metrics with the account samples', async () => {
    const text = await scrape(daemon);
    expect(text).toContain('petrel_account_limit_refusals_total{');
    const r = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('per-account limits on a node of two workers', () => {
  let t: TestDir;
  let daemon: Daemon;
  beforeAll(async () => {
    t = makeTestDir('[server]\nworkers = 2\n');
    addAccount(t, 'daily', '--daily', '6');
    addAccount(t, 'fast', '--rate', '4/s');
    daemon = await startDaemon(t);
  });
  afterAll(async () => {
    await daemon?.stop();
    t?.cleanup();
  });

  /** Sessions of `account` until both workers hold one. */
  async function onBothWorkers(account: string): Promise<RawSmtp[]> {
    const from = daemon.logs.length;
    const held: RawSmtp[] = [];
    const workers = () =>
      new Set(
        daemon.logs
          .slice(from)
          .filter((l) => l.msg === 'authenticated')
          .map((l) => l['worker']),
      );
    while (held.length < 2 || workers().size < 2) {
      if (held.length >= 8) throw new Error('every session went to one worker');
      held.push(await session(daemon, account));
      await until(
        'the session’s log line',
        () => daemon.logs.slice(from).filter((l) => l.msg === 'authenticated').length >= held.length,
      );
    }
    return held;
  }

  it('keeps one daily quota for the node, not one per worker', async () => {
    const held = await onBothWorkers('daily');
    const replies = await together(held, 6);
    expect(replies.filter((r) => r.code === 250)).toHaveLength(6);
    for (const r of replies.filter((x) => x.code !== 250))
      expect(r.text).toMatch(/^451 4\.7\.1 .*daily quota/);
    for (const c of held) c.close();
  });

  it('keeps one rate for the node, not one per worker', async () => {
    const held = await onBothWorkers('fast');
    const started = Date.now();
    const replies = await together(held, 6);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(replies.filter((r) => r.code === 250)).toHaveLength(4);
    for (const c of held) c.close();
    const text = await scrape(daemon);
    // Summed over both workers: every refusal counted once.
    expect(sample(text, 'petrel_account_limit_refusals_total', { account: 'fast', reason: 'rate' })).toBe(
      replies.length - 4,
    );
    expect(sample(text, 'petrel_account_daily_recipients', { account: 'daily' })).toBe(6);
  });
});

describe.skipIf(!POSTGRES.available || !REDIS.available)(
  'per-account limits on two nodes sharing Redis',
  () => {
    let server: TestPostgres;
    let redis: TestRedis;
    const nodes: { t: TestDir; daemon: Daemon }[] = [];
    beforeAll(async () => {
      server = await startPostgres();
      redis = await startRedis();
      const url = await server.database('quotas');
      for (const name of ['node-a', 'node-b']) {
        const t = makeTestDir(
          `[spool]\nurl = "${url}"\n\n[cluster]\nnode_timeout = "2s"\nredis = "${redis.url}"\nnode = "${name}"\n`,
        );
        if (name === 'node-a') {
          addAccount(t, 'daily', '--daily', '6');
          addAccount(t, 'fast', '--rate', '4/s');
        }
        nodes.push({ t, daemon: await startDaemon(t) });
      }
    });
    afterAll(async () => {
      for (const n of nodes) {
        await n.daemon.stop();
        n.t.cleanup();
      }
      await server?.stop();
      await redis?.stop();
    });

    it('keeps one daily quota and one rate for the cluster', async () => {
      const daily = await Promise.all(nodes.map((n) => session(n.daemon, 'daily')));
      const dailyReplies = await together(daily, 6);
      expect(dailyReplies.filter((r) => r.code === 250)).toHaveLength(6);
      for (const c of daily) c.close();

      const fast = await Promise.all(nodes.map((n) => session(n.daemon, 'fast')));
      const started = Date.now();
      const fastReplies = await together(fast, 6);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(fastReplies.filter((r) => r.code === 250)).toHaveLength(4);
      for (const c of fast) c.close();
    });
  },
);

describe('petrel user limits', () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it('refuses bad rates and quotas with one clear line and exit 2', () => {
    const cases: [string[], RegExp][] = [
      [['--rate', '10/day'], /^petrel: invalid --rate "10\/day": use a positive count per s, min or h/],
      [['--rate', '0/s'], /^petrel: invalid --rate "0\/s"/],
      [['--rate', 'fast'], /^petrel: invalid --rate "fast"/],
      [
        ['--daily', '0'],
        /^petrel: invalid --daily "0": use a whole number of recipients per day from 1, or "none"/,
      ],
      [['--daily', '-3'], /^petrel: invalid --daily "-3"/],
      [['--daily', '2.5'], /^petrel: invalid --daily "2.5"/],
      [['--daily', '99999999999'], /^petrel: invalid --daily "99999999999"/],
    ];
    for (const [opts, message] of cases) {
      const r = cli(t, ['user', 'add', 'app', '--allow-from', 'shop.example', ...opts], 'pw\n');
      expect(r.status, opts.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    // Nothing was created by the refused commands.
    expect(cli(t, ['user', 'list']).stdout).toBe('no accounts\n');
  });

  it('sets, shows, lists and clears limits; a missing account or an empty change is an error', () => {
    expect(
      cli(
        t,
        ['user', 'add', 'app', '--allow-from', 'shop.example', '--rate', '600/min', '--daily', '50000'],
        'pw\n',
      ).status,
    ).toBe(0);
    expect(cli(t, ['user', 'list']).stdout).toBe('app\tshop.example\trate 600/min\tdaily 50000\n');
    const set = cli(t, ['--json', 'user', 'set', 'app', '--rate', '100/s']);
    expect(set.status).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ name: 'app', rate: '100/s', dailyQuota: 50000 });
    const shown = cli(t, ['user', 'show', 'app']).stdout;
    expect(shown).toMatch(/^rate: +100\/s$/m);
    expect(shown).toMatch(/^daily quota: +50000$/m);
    expect(shown).toMatch(/^queued today: +0 recipients$/m);
    expect(cli(t, ['user', 'set', 'app', '--rate', 'unlimited', '--daily', 'none']).stdout).toBe(
      'account app: rate unlimited, daily quota none, egress none\n',
    );
    expect(JSON.parse(cli(t, ['--json', 'user', 'list']).stdout)).toMatchObject({
      rate: null,
      dailyQuota: null,
    });
    const ghost = cli(t, ['user', 'set', 'ghost', '--daily', '5']);
    expect(ghost).toMatchObject({ status: 1, stderr: 'petrel: no account named ghost\n' });
    expect(cli(t, ['user', 'set', 'app'])).toMatchObject({
      status: 2,
      stderr: 'petrel: nothing to change: give --rate, --daily or --egress\n',
    });
    expect(cli(t, ['user', 'set', 'app', '--daily', 'lots'])).toMatchObject({ status: 2 });
    expect(cli(t, ['user', 'show', 'ghost'])).toMatchObject({
      status: 1,
      stderr: 'petrel: no account named ghost\n',
    });
  });
});
