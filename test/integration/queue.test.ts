import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from '../../src/spool/index.js';
import { addUser, cli, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { startSink, type ReceivedMessage, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

/** Submits one message over an authenticated session; returns the queue id. */
async function submit(
  port: number,
  to: string[],
  subject: string,
  from = 'sender@example.com',
): Promise<string> {
  const c = await RawSmtp.connect(port);
  await c.login('app', 'pw');
  await c.command(`MAIL FROM:<${from}>`);
  for (const r of to) expect((await c.command(`RCPT TO:<${r}>`)).code).toBe(250);
  const r = await c.data(
    `From: ${from}\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n\r\nHello ${subject}\r\n`,
  );
  c.close();
  expect(r.code).toBe(250);
  return /queued as (\S+)/.exec(r.text)![1]!;
}

const bySubject = (sink: Sink, subject: string): ReceivedMessage[] =>
  sink.messages.filter((m) => m.body.toString().includes(`Subject: ${subject}\r\n`));

describe('delivery through the queue', () => {
  let t: TestDir;
  let daemon: Daemon;
  let sink: Sink;
  let dns: TestDnsServer;
  let spool: Spool;
  const flaky = new Map<string, number>();

  beforeAll(async () => {
    sink = await startSink({
      rcpt: (address) => {
        if (address.startsWith('unknown@')) return { code: 550, text: '5.1.1 User unknown' };
        if (address.startsWith('flaky@')) {
          const n = (flaky.get(address) ?? 0) + 1;
          flaky.set(address, n);
          if (n <= 2) return { code: 451, text: '4.3.0 Try again later' };
        }
        return undefined;
      },
    });
    dns = await startDnsServer({
      'example.com': { mx: [{ preference: 10, exchange: 'mx.example.com' }] },
      'mx.example.com': { a: ['127.0.0.1'] },
      'dest.test': {
        mx: [
          { preference: 10, exchange: 'mx1.dest.test' },
          { preference: 20, exchange: 'mx2.dest.test' },
        ],
      },
      // Nothing listens on 127.0.0.2: the preferred MX refuses connections.
      'mx1.dest.test': { a: ['127.0.0.2'] },
      'mx2.dest.test': { a: ['127.0.0.1'] },
      'implicit.test': { a: ['127.0.0.1'] },
      'nullmx.test': { mx: [{ preference: 0, exchange: '' }] },
    });
    t = makeTestDir(`
[dns]
servers = ["${dns.server}"]

[delivery]
mx_port = ${sink.port}
poll_interval = "200ms"

[delivery.default]
retry = ["500ms"]
tls = "may"
`);
    addUser(t, 'app', ['example.com'], 'pw');
    daemon = await startDaemon(t);
    spool = openSpool(t.dataDir);
  });

  afterAll(async () => {
    await spool?.close();
    await daemon?.stop();
    await sink?.close();
    await dns?.close();
    t?.cleanup();
  });

  it('delivers through the next MX when the preferred one refuses connections', async () => {
    const id = await submit(daemon.ports.submission, ['one@dest.test'], 'fallback');
    const [got] = await until(
      'delivery',
      async () => bySubject(sink, 'fallback').length > 0 && bySubject(sink, 'fallback'),
    );
    expect(got!.rcptTo).toEqual(['one@dest.test']);
    const events = await until('event', async () => {
      const e = await spool.queue.events(id);
      return e.some((x) => x.type === 'delivery') && e;
    });
    expect(events.find((e) => e.type === 'delivery')).toMatchObject({
      mx: 'mx2.dest.test',
      reply: { code: 250 },
    });
  });

  it('delivers to the implicit MX of a domain with only an address record', async () => {
    await submit(daemon.ports.submission, ['someone@implicit.test'], 'implicit');
    await until('delivery', async () => bySubject(sink, 'implicit').length > 0);
  });

  it('retries a 451 on the schedule and delivers on the third attempt, logging three events', async () => {
    const id = await submit(daemon.ports.submission, ['flaky@dest.test'], 'flaky');
    await until('delivery', async () => bySubject(sink, 'flaky').length > 0);
    const events = await until('events', async () => {
      const e = (await spool.queue.events(id)).filter((x) => x.type !== 'reception');
      return e.length >= 3 && e;
    });
    expect(events.map((e) => [e.type, e.attempt, e.reply?.code])).toEqual([
      ['transient_failure', 1, 451],
      ['transient_failure', 2, 451],
      ['delivery', 3, 250],
    ]);
    expect(events[1]!.at - events[0]!.at).toBeGreaterThanOrEqual(450);
    expect(flaky.get('flaky@dest.test')).toBe(3);
  });

  it('bounces one refused recipient of three with one DSN, and delivers the other two', async () => {
    const id = await submit(
      daemon.ports.submission,
      ['a@dest.test', 'unknown@dest.test', 'b@dest.test'],
      'partial',
    );
    const got = await until(
      'delivery',
      async () => bySubject(sink, 'partial').length >= 2 && bySubject(sink, 'partial'),
    );
    // Each recipient has its own return path (VERP), so each gets its own transaction.
    expect(got.map((m) => m.rcptTo)).toEqual([['a@dest.test'], ['b@dest.test']]);
    for (const m of got)
      expect(m.mailFrom).toMatch(/^b-[0-9a-z]+-[0-9a-z]+-[0-9a-f]{16}@bounces\.localhost$/);
    expect(new Set(got.map((m) => m.sessionId)).size).toBe(1);
    const dsns = await until('dsn', async () => {
      const d = sink.messages.filter((m) => m.mailFrom === '' && m.body.includes(id));
      return d.length > 0 && d;
    });
    expect(dsns).toHaveLength(1);
    expect(dsns[0]!.rcptTo).toEqual(['sender@example.com']);
    const parsed = await simpleParser(dsns[0]!.body);
    expect(parsed.headers.get('content-type')).toMatchObject({
      value: 'multipart/report',
      params: { 'report-type': 'delivery-status' },
    });
    // mailparser folds the message/delivery-status part into the text.
    const status = parsed.text ?? '';
    expect(parsed.attachments.map((a) => a.contentType)).toContain('text/rfc822-headers');
    expect(status).toContain('Final-Recipient: rfc822; unknown@dest.test');
    expect(status).toContain('Action: failed');
    expect(status).toContain('Status: 5.1.1');
    expect(status).toContain('Diagnostic-Code: smtp; 550');
    const msg = await spool.messages.get(id);
    expect(msg!.recipients.map((r) => r.state)).toEqual(['delivered', 'bounced', 'delivered']);
  });

  it.each([
    ['a null MX', 'x@nullmx.test', /5\.1\.10/],
    ['NXDOMAIN', 'x@nowhere.test', /5\.1\.2/],
  ])('bounces a recipient whose domain has %s, with a DSN', async (_what, rcpt, status) => {
    const id = await submit(daemon.ports.submission, [rcpt], `dns-${rcpt}`);
    const dsn = await until('dsn', async () =>
      sink.messages.find((m) => m.mailFrom === '' && m.body.includes(id)),
    );
    expect(dsn.body.toString()).toMatch(status);
    expect(dsn.body.toString()).toContain(`Final-Recipient: rfc822; ${rcpt}`);
    expect((await spool.messages.get(id))!.recipients[0]!.state).toBe('bounced');
  });

  it('stops deliveries to a suspended domain while others continue, and resumes them', async () => {
    expect(cli(t, ['queue', 'suspend', 'implicit.test']).status).toBe(0);
    const held = await submit(daemon.ports.submission, ['held@implicit.test'], 'held');
    await submit(daemon.ports.submission, ['free@dest.test'], 'free');
    // Leasing takes the oldest due first: the lease that took the later message passed the held one over.
    await until('other domain', async () => bySubject(sink, 'free').length > 0);
    expect(bySubject(sink, 'held')).toHaveLength(0);
    expect((await spool.messages.get(held))!.recipients[0]!.state).toBe('queued');
    expect(cli(t, ['queue', 'resume', 'implicit.test']).status).toBe(0);
    await until('resumed delivery', async () => bySubject(sink, 'held').length > 0, 5000);
  });
});
