import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from '../../src/spool/index.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { recordFigure, type AttemptOutcome, type VectorOutcome } from './figures.js';

let r: Routed;
let spool: Spool;
const vectors: VectorOutcome[] = [];
const attempts: AttemptOutcome[] = [];
const alive = (): boolean => r.daemon.child.exitCode === null && r.daemon.child.signalCode === null;

beforeAll(async () => {
  r = await startRoutedDaemon({
    domains: ['example.com', 'dest.test', 'ext.test'],
    user: { domains: ['example.com'] },
    sink: {
      rcpt: (a) => {
        // A reply whose second line would be a header if it were copied into the DSN raw.
        if (a.startsWith('inject@')) return { code: 550, text: '5.1.1 no such user\nBcc: evil@ext.test' };
        if (a.startsWith('gone@') || a.startsWith('bounces-too@'))
          return { code: 550, text: '5.1.1 User unknown' };
        return undefined;
      },
    },
  });
  spool = openSpool(r.t.dataDir);
});

afterAll(async () => {
  recordFigure('corpus-injection', { figure: 'corpus', vectors });
  recordFigure('tenancy-relay', { figure: 'tenancy', attempts });
  await spool?.close();
  await r?.stop();
});

async function submit(from: string, to: string, headers = ''): Promise<string> {
  const c = await RawSmtp.connect(r.daemon.ports.submission);
  await c.login('app', 'pw');
  expect((await c.command(`MAIL FROM:<${from}>`)).code).toBe(250);
  expect((await c.command(`RCPT TO:<${to}>`)).code).toBe(250);
  const reply = await c.data(
    `From: ${from}\r\nTo: someone@dest.test\r\n${headers}Subject: test\r\n\r\nhello\r\n`,
  );
  c.close();
  expect(reply.code).toBe(250);
  return /queued as (\S+)/.exec(reply.text)![1]!;
}

describe('protocol and injection', () => {
  it('case 15: STARTTLS with an argument gets 501', async () => {
    const c = await RawSmtp.connect(r.daemon.ports.submission);
    await c.command('EHLO client.test');
    const reply = await c.command('STARTTLS extra');
    c.close();
    vectors.push({
      name: 'STARTTLS with an argument',
      neutralised: reply.code === 501,
      smuggled: 0,
      crashed: !alive(),
    });
    expect(reply.code).toBe(501);
  });

  it('case 29: a quoted local part naming another domain is refused or delivered to its own domain, never relayed', async () => {
    const c = await RawSmtp.connect(r.daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<app@example.com>');
    const rcpt = await c.command('RCPT TO:<"victim@ext.test x"@example.com>');
    let domain: string | null = null;
    if (rcpt.code === 250) {
      const reply = await c.data('From: app@example.com\r\nSubject: quoted\r\n\r\nhello\r\n');
      const id = /queued as (\S+)/.exec(reply.text)![1]!;
      const rows = await until('the recipient to be final', async () => {
        const m = await spool.messages.get(id);
        const state = m?.recipients[0]?.state;
        return state !== undefined && state !== 'queued' && state !== 'inflight' && m!.recipients;
      });
      domain = rows[0]!.domain;
    }
    c.close();
    const relayed = r.sink.messages.some((m) => m.rcptTo.some((a) => a.toLowerCase().endsWith('@ext.test')));
    attempts.push({
      name: 'relay through a quoted local part',
      succeeded: relayed || (domain !== null && domain !== 'example.com'),
    });
    if (rcpt.code === 250) expect(domain).toBe('example.com');
    else expect(rcpt.code).toBeGreaterThanOrEqual(500);
    expect(relayed).toBe(false);
  });

  it('case 34: a remote reply with a line break adds no header to the DSN it causes', async () => {
    const id = await submit('app@example.com', 'inject@dest.test');
    const dsn = await until('the DSN', () =>
      r.sink.messages.find((m) => m.mailFrom === '' && m.body.includes(id)),
    );
    const parsed = await simpleParser(dsn.body);
    const injected = parsed.headers.has('bcc') || dsn.rcptTo.some((a) => a.endsWith('@ext.test'));
    vectors.push({
      name: 'line break in a remote reply',
      neutralised: !injected,
      smuggled: injected ? 1 : 0,
      crashed: !alive(),
    });
    expect(injected).toBe(false);
    expect(dsn.rcptTo).toEqual(['app@example.com']);
    // The top-level header block ends before any text of the reply.
    const head = dsn.body.subarray(0, dsn.body.indexOf('\r\n\r\n')).toString();
    expect(head).not.toMatch(/^Bcc:/im);
  });

  it('case 39: a DSN that bounces makes no DSN of its own', async () => {
    const id = await submit('bounces-too@example.com', 'gone@dest.test');
    // The DSN goes to bounces-too@example.com, which the sink refuses as well.
    await until(
      'the original to bounce',
      async () => (await spool.messages.get(id))?.recipients[0]?.state === 'bounced',
    );
    await until('the DSN to be bounced', async () => {
      const rows = await spool.queue.list({ state: 'bounced', limit: 1000 });
      return rows.some((e) => e.address === 'bounces-too@example.com');
    });
    // A DSN commits with the outcome that owes it: had the DSN's bounce owed one, it would be here now.
    const all = await Promise.all(
      (['queued', 'inflight', 'delivered', 'bounced'] as const).map((state) =>
        spool.queue.list({ state, limit: 10_000 }),
      ),
    );
    const toNullSender = all.flat().filter((e) => e.address === '');
    const toBouncer = all.flat().filter((e) => e.address === 'bounces-too@example.com');
    vectors.push({
      name: 'bounce of a bounce',
      neutralised: toNullSender.length === 0 && toBouncer.length === 1,
      smuggled: 0,
      crashed: !alive(),
    });
    expect(toNullSender).toHaveLength(0);
    expect(toBouncer).toHaveLength(1);
  });
});
