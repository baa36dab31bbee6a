import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { recordFigure, type AttemptOutcome, type VectorOutcome } from './figures.js';
import { message, sendOne } from './submit.js';

let t: TestDir;
let daemon: Daemon;
const vectors: VectorOutcome[] = [];
const attempts: AttemptOutcome[] = [];
const alive = (): boolean => daemon.child.exitCode === null && daemon.child.signalCode === null;
const rssKb = (): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8'))![1]);

beforeAll(async () => {
  t = makeTestDir('', 'max_connections_per_ip = 20\nauth_max_failures = 4');
  addUser(t, 'tenant-a', ['tenant-a.test'], 'pw-a');
  addUser(t, 'tenant-b', ['tenant-b.test'], 'pw-b');
  daemon = await startDaemon(t);
});

afterAll(async () => {
  recordFigure('corpus-bounds', { figure: 'corpus', vectors });
  recordFigure('tenancy-submission', { figure: 'tenancy', attempts });
  await daemon?.stop();
  t?.cleanup();
});

async function loggedIn(user = 'tenant-a', pass = 'pw-a'): Promise<RawSmtp> {
  const c = await RawSmtp.connect(daemon.ports.submission);
  await c.login(user, pass);
  return c;
}

describe('input bounds', () => {
  it('case 19: a 100 KiB command line without CRLF closes the connection, and memory stays bounded', async () => {
    const before = rssKb();
    const socket = connect({ port: daemon.ports.submission, host: '127.0.0.1' });
    let closed = false;
    let banner = '';
    socket.on('data', (d: Buffer) => (banner += d.toString()));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    await until('the banner', () => banner.includes('\r\n'));
    socket.write(`EHLO ${'a'.repeat(100 * 1024)}`);
    await until('the connection closed', () => closed);
    const grown = rssKb() - before;
    vectors.push({
      name: `100 KiB line without CRLF (RSS +${grown} kB)`,
      neutralised: closed && grown < 10 * 1024 && alive(),
      smuggled: 0,
      crashed: !alive(),
    });
    expect(grown).toBeLessThan(10 * 1024);
  });

  it('case 22: a 5 MiB header block and a 1 MiB folded header are refused with 5xx', async () => {
    const c = await loggedIn();
    for (const [name, headers] of [
      ['5 MiB header block', `${'X-Filler: 0123456789012345678901234567890123456789\r\n'.repeat(100_000)}`],
      [
        '1 MiB folded header',
        `X-Folded: start\r\n${' 0123456789012345678901234567890123456789\r\n'.repeat(25_000)}`,
      ],
    ] as const) {
      const r = await sendOne(
        c,
        `From: a@tenant-a.test\r\n${headers}Subject: big\r\n\r\nbody\r\n`,
        'rcpt@dest.test',
        'a@tenant-a.test',
      );
      vectors.push({ name, neutralised: r.code >= 500 && alive(), smuggled: 0, crashed: !alive() });
      expect(r.code, `${name}: ${r.text}`).toBeGreaterThanOrEqual(500);
    }
    c.close();
  });

  it('case 23: a message with 101 Received headers is refused with 554 5.4.6', async () => {
    const c = await loggedIn();
    const received = 'Received: from a by b; Mon, 23 Nov 2026 10:00:00 +0000\r\n'.repeat(101);
    const r = await sendOne(
      c,
      received + message('hops', 'a@tenant-a.test'),
      'rcpt@dest.test',
      'a@tenant-a.test',
    );
    vectors.push({
      name: '101 Received headers',
      neutralised: /^554 5\.4\.6/.test(r.text),
      smuggled: 0,
      crashed: !alive(),
    });
    expect(r.text).toMatch(/^554 5\.4\.6/);
    c.close();
  });

  it('case 24: connections over the per-IP cap get 421', async () => {
    // From an address of its own, so the other tests' connections do not count.
    const localAddress = '127.0.0.3';
    const open = await Promise.all(
      Array.from({ length: 20 }, () => RawSmtp.connect(daemon.ports.submission, { localAddress })),
    );
    const extra = connect({ port: daemon.ports.submission, host: '127.0.0.1', localAddress });
    let text = '';
    extra.on('data', (d: Buffer) => (text += d.toString()));
    extra.on('error', () => undefined);
    await until('a reply to the connection over the cap', () => text.includes('\r\n'));
    extra.destroy();
    open.forEach((c) => c.close());
    vectors.push({
      name: 'connection 21 from one IP (cap 20)',
      neutralised: text.startsWith('421'),
      smuggled: 0,
      crashed: !alive(),
    });
    expect(text).toMatch(/^421 /);
  });
});

describe('authentication and tenancy', () => {
  it('case 26: AUTH PLAIN with an authorization identity of another account is refused', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.command('EHLO client.test');
    await c.startTls();
    await c.command('EHLO client.test');
    const r = await c.command(`AUTH PLAIN ${Buffer.from('tenant-b\0tenant-a\0pw-a').toString('base64')}`);
    attempts.push({ name: 'authzid tenant-b with the login of tenant-a', succeeded: r.code === 235 });
    expect(r.code).toBe(535);
    c.close();
  });

  it("case 27: tenant A cannot use tenant B's domain in MAIL FROM or From:", async () => {
    const c = await loggedIn();
    const mail = await c.command('MAIL FROM:<x@tenant-b.test>');
    attempts.push({ name: 'MAIL FROM in the other tenant domain', succeeded: mail.code === 250 });
    expect(mail.code).toBe(553);
    await c.command('RSET');
    expect((await c.command('MAIL FROM:<x@tenant-a.test>')).code).toBe(250);
    expect((await c.command('RCPT TO:<rcpt@dest.test>')).code).toBe(250);
    const data = await c.data(message('foreign-from', 'x@tenant-b.test'));
    attempts.push({ name: 'From: header in the other tenant domain', succeeded: data.code === 250 });
    expect(data.code).toBeGreaterThanOrEqual(550);
    c.close();
  });

  it('case 28: without AUTH, every relay trick at RCPT TO is refused', async () => {
    for (const rcpt of [
      '"victim@ext.test"',
      'victim%ext.test',
      'ext.test!victim',
      '@tenant-a.test:victim@ext.test',
      'victim@ext.test',
    ]) {
      const c = await RawSmtp.connect(daemon.ports.submission);
      await c.command('EHLO client.test');
      const mail = await c.command('MAIL FROM:<x@tenant-a.test>');
      const r = mail.code === 250 ? await c.command(`RCPT TO:<${rcpt}>`) : mail;
      attempts.push({ name: `unauthenticated relay to <${rcpt}>`, succeeded: r.code === 250 });
      expect(r.code, `${rcpt}: ${r.text}`).toBeGreaterThanOrEqual(500);
      c.close();
    }
  });

  it('case 25: repeated wrong passwords from one address are slowed and then refused', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.4' });
      await c.command('EHLO client.test');
      await c.startTls();
      await c.command('EHLO client.test');
      codes.push(
        (await c.command(`AUTH PLAIN ${Buffer.from(`\0tenant-a\0wrong-${i}`).toString('base64')}`)).code,
      );
      c.close();
    }
    // And then the right password from the same address is held off too, for the backoff window.
    const c = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.4' });
    await c.command('EHLO client.test');
    await c.startTls();
    await c.command('EHLO client.test');
    const right = await c.command(`AUTH PLAIN ${Buffer.from('\0tenant-a\0pw-a').toString('base64')}`);
    c.close();
    attempts.push({ name: 'password guessing past the AUTH failure limit', succeeded: right.code === 235 });
    expect(
      codes.some((code) => code === 454 || code === 421),
      codes.join(' '),
    ).toBe(true);
    expect(right.code).not.toBe(235);
    expect(daemon.stdoutText()).not.toContain(Buffer.from('\0tenant-a\0wrong-0').toString('base64'));
    expect(daemon.stdoutText()).not.toContain('wrong-0');
  });
});
