import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from '../../src/spool/index.js';
import { addUser, cli, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';

const USER = 'app';
const PASS = 'correct horse battery';

function transport(port: number, auth: { user: string; pass: string } | null, secure = false) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure,
    requireTLS: !secure,
    tls: { rejectUnauthorized: false },
    ...(auth ? { auth } : {}),
  });
}

function rawMessage(headers: string[], body: string): string {
  return `${headers.join('\r\n')}\r\n\r\n${body}`;
}

function queueId(response: string): string {
  const m = /queued as (\S+)/.exec(response);
  if (!m) throw new Error(`no queue id in ${response}`);
  return m[1]!;
}

describe('submission', () => {
  let t: TestDir;
  let daemon: Daemon;
  let spool: Spool;

  beforeAll(async () => {
    t = makeTestDir(
      '',
      `max_message_size = "64KB"
trusted_networks = ["127.0.0.2/32"]
trusted_account = "local-apps"
auth_max_failures = 4
data_timeout = "2s"
# Sessions some tests leave open would otherwise hold the stop at the end for the default 10 s.
close_timeout = "200ms"`,
    );
    // The account exists before start-up, and one is added while the daemon runs (below).
    addUser(t, USER, ['example.com', '*.example.org'], PASS);
    addUser(t, 'local-apps', ['apps.example.net']);
    daemon = await startDaemon(t);
    spool = openSpool(t.dataDir);
  });

  afterAll(async () => {
    await spool?.close();
    await daemon?.stop();
    t?.cleanup();
  });

  it('accepts a message after STARTTLS and AUTH and replies with a queue id once it is in the spool', async () => {
    const info = await transport(daemon.ports.submission, { user: USER, pass: PASS }).sendMail({
      from: 'sender@example.com',
      to: ['one@dest.test', 'two@other.test'],
      subject: 'hello',
      text: 'first message',
    });
    expect(info.response).toMatch(/^250 2\.0\.0 OK queued as [0-9A-Z]+$/);
    const stored = await spool.messages.get(queueId(info.response));
    expect(stored).not.toBeNull();
    expect(stored!.mailFrom).toBe('sender@example.com');
    expect(stored!.recipients.map((r) => [r.address, r.domain])).toEqual([
      ['one@dest.test', 'dest.test'],
      ['two@other.test', 'other.test'],
    ]);
    expect(stored!.body.toString()).toContain('first message');
  });

  it('accepts mail on the implicit-TLS listener', async () => {
    const info = await transport(daemon.ports.submissions!, { user: USER, pass: PASS }, true).sendMail({
      from: 'sender@sub.example.org',
      to: 'one@dest.test',
      subject: 'over 465',
      text: 'implicit tls',
    });
    expect(info.response).toMatch(/queued as/);
  });

  it('refuses a wrong password with 535', async () => {
    const err = await transport(daemon.ports.submission, { user: USER, pass: 'wrong' })
      .verify()
      .catch((e: { responseCode?: number }) => e);
    expect(err).toMatchObject({ responseCode: 535 });
  });

  it('refuses AUTH before STARTTLS on the submission port with 538', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    const ehlo = await c.command('EHLO client.test');
    expect(ehlo.text).toContain('STARTTLS');
    const r = await c.command(`AUTH PLAIN ${Buffer.from(`\0${USER}\0${PASS}`).toString('base64')}`);
    expect(r.code).toBe(538);
    c.close();
  });

  it('refuses AUTH PLAIN whose authorization identity differs from the login', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.command('EHLO client.test');
    await c.startTls();
    await c.command('EHLO client.test');
    const r = await c.command(`AUTH PLAIN ${Buffer.from(`other\0${USER}\0${PASS}`).toString('base64')}`);
    expect(r.code).toBe(535);
    c.close();
  });

  it('refuses mail without AUTH from an untrusted client (no relay)', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.command('EHLO client.test');
    await c.startTls();
    await c.command('EHLO client.test');
    const r = await c.command('MAIL FROM:<sender@example.com>');
    expect(r.code).toBe(530);
    const rcpt = await c.command('RCPT TO:<victim@elsewhere.test>');
    expect(rcpt.code).toBeGreaterThanOrEqual(500);
    c.close();
  });

  it('refuses a sender domain the account may not use, at MAIL FROM', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    const r = await c.command('MAIL FROM:<ceo@other-tenant.test>');
    expect(r.code).toBe(553);
    expect(r.text).toContain('5.7.1');
    c.close();
  });

  it('refuses a From: header in a domain the account may not use, and queues nothing', async () => {
    const before = await spool.messages.count();
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    expect((await c.command('MAIL FROM:<sender@example.com>')).code).toBe(250);
    expect((await c.command('RCPT TO:<one@dest.test>')).code).toBe(250);
    const r = await c.data(rawMessage(['From: CEO <ceo@other-tenant.test>', 'Subject: x'], 'body\r\n'));
    expect(r.code).toBe(550);
    expect(r.text).toContain('5.7.1');
    expect(await spool.messages.count()).toBe(before);
    c.close();
  });

  it.each([
    [
      'a Sender: in another domain',
      ['From: sender@example.com', 'Sender: Boss <boss@other-tenant.test>'],
      /5\.7\.1 Sender: domain not allowed/,
    ],
    [
      'a Resent-From: in another domain',
      ['From: sender@example.com', 'Resent-From: boss@other-tenant.test'],
      /5\.7\.1 Resent-From: domain not allowed/,
    ],
    [
      'a Resent-Sender: in another domain',
      ['From: sender@example.com', 'Resent-Sender: <boss@other-tenant.test>'],
      /5\.7\.1 Resent-Sender: domain not allowed/,
    ],
    [
      'a second Sender:',
      ['From: sender@example.com', 'Sender: a@example.com', 'Sender: b@example.com'],
      /5\.6\.0 .*at most one Sender/,
    ],
    ['an empty Sender:', ['From: sender@example.com', 'Sender: '], /5\.6\.0 Sender header has no address/],
    [
      'a Sender: without a domain',
      ['From: sender@example.com', 'Sender: Nobody'],
      /5\.7\.1 Sender: domain not allowed/,
    ],
  ])('refuses %s as it refuses such a From:, and queues nothing', async (_what, headers, pattern) => {
    const before = await spool.messages.count();
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    expect((await c.command('MAIL FROM:<sender@example.com>')).code).toBe(250);
    expect((await c.command('RCPT TO:<one@dest.test>')).code).toBe(250);
    const r = await c.data(rawMessage([...headers, 'Subject: x'], 'body\r\n'));
    expect(r.code).toBeGreaterThanOrEqual(550);
    expect(r.text).toMatch(pattern);
    expect(await spool.messages.count()).toBe(before);
    c.close();
  });

  it("accepts Sender: and Resent-From: in the account's own domains", async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<one@dest.test>');
    const r = await c.data(
      rawMessage(
        [
          'From: sender@example.com',
          'Sender: ops@example.com',
          'Resent-From: a@sub.example.org',
          'Subject: x',
        ],
        'body\r\n',
      ),
    );
    expect(r.code).toBe(250);
    c.close();
  });

  it.each([
    ['an ESC', 'Subject: hi\x1b[2Jthere'],
    ['a vertical tab', 'Subject: a\x0bb'],
    ['a form feed in a folded line', 'Subject: a\r\n \x0cb'],
    ['a DEL', 'X-Note: a\x7fb'],
  ])('refuses a header with %s with 554 5.6.0', async (_what, header) => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<one@dest.test>');
    const r = await c.data(rawMessage(['From: sender@example.com', header], 'body\r\n'));
    expect(r.code).toBe(554);
    expect(r.text).toMatch(/5\.6\.0 .*control character/);
    c.close();
  });

  it('refuses a declared SIZE over the limit at MAIL FROM', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    const r = await c.command(`MAIL FROM:<sender@example.com> SIZE=${64 * 1024 + 1}`);
    expect(r.code).toBe(552);
    c.close();
  });

  it('refuses a message over the size limit at the end of DATA with 552 5.3.4', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<one@dest.test>');
    const line = `${'x'.repeat(76)}\r\n`;
    const r = await c.data(
      rawMessage(['From: sender@example.com'], line.repeat(Math.ceil((64 * 1024) / line.length) + 1)),
    );
    expect(r.code).toBe(552);
    expect(r.text).toContain('5.3.4');
    c.close();
  });

  it('accepts the configured number of recipients (RFC 5321: 100 at least) and answers 452 beyond it', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com>');
    for (let i = 1; i <= 100; i++) expect((await c.command(`RCPT TO:<r${i}@dest.test>`)).code).toBe(250);
    expect((await c.command('RCPT TO:<r101@dest.test>')).code).toBe(452);
    c.close();
  });

  it.each([
    ['a bare LF', 'From: sender@example.com\r\nSubject: x\r\n\r\nline one\nline two\r\n'],
    ['a bare CR', 'From: sender@example.com\r\nSubject: x\r\n\r\nline one\rline two\r\n'],
    ['a NUL byte', 'From: sender@example.com\r\nSubject: x\r\n\r\nline\0one\r\n'],
    [
      'an end-of-data look-alike',
      'From: sender@example.com\r\nSubject: x\r\n\r\nhi\n.\r\nMAIL FROM:<x@evil.test>\r\n',
    ],
  ])('refuses a message containing %s with 554 5.6.0', async (_what, message) => {
    const before = await spool.messages.count();
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<one@dest.test>');
    const r = await c.data(message);
    expect(r.code).toBe(554);
    expect(r.text).toContain('5.6.0');
    expect(await spool.messages.count()).toBe(before);
    c.close();
  });

  it('stores an 8-bit UTF-8 body byte for byte', async () => {
    const body = Buffer.from('Grüße aus Köln — 日本語のテキスト — émoji 🐦\r\nzweite Zeile\r\n', 'utf8');
    const head = Buffer.from(
      'From: Sender <sender@example.com>\r\nTo: one@dest.test\r\nSubject: 8bit\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n' +
        'Message-ID: <eight-bit@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n' +
        'Content-Transfer-Encoding: 8bit\r\n\r\n',
    );
    const message = Buffer.concat([head, body]);
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com> BODY=8BITMIME');
    await c.command('RCPT TO:<one@dest.test>');
    const r = await c.data(message);
    expect(r.code).toBe(250);
    const stored = await spool.messages.get(queueId(r.text));
    // Everything after the Received header Petrel prepends is the message as sent.
    expect(stored!.body.subarray(stored!.body.length - message.length).equals(message)).toBe(true);
    expect(stored!.body.subarray(0, 9).toString()).toBe('Received:');
    c.close();
  });

  it('adds Message-ID and Date when missing, and drops Bcc', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<one@dest.test>');
    await c.command('RCPT TO:<hidden@dest.test>');
    const r = await c.data(
      rawMessage(
        [
          'From: sender@example.com',
          'To: one@dest.test',
          'Bcc: hidden@dest.test,',
          '\tsecond@dest.test',
          'Subject: no id',
        ],
        'body\r\n',
      ),
    );
    expect(r.code).toBe(250);
    const stored = await spool.messages.get(queueId(r.text));
    const text = stored!.body.toString();
    const headerBlock = text.slice(0, text.indexOf('\r\n\r\n'));
    expect(headerBlock).toMatch(/^Message-ID: <[^>]+@petrel\.test>$/m);
    expect(headerBlock).toMatch(/^Date: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/m);
    // A Bcc field, not the letters: queue ids and Message-IDs are random hex and may contain them.
    expect(text).not.toMatch(/^bcc:/im);
    expect(text).not.toContain('hidden@dest.test');
    expect(text).not.toContain('second@dest.test');
    expect(stored!.recipients.map((x) => x.address)).toEqual(['one@dest.test', 'hidden@dest.test']);
    expect(stored!.headerMessageId).toMatch(/@petrel\.test>$/);
    c.close();
  });

  it('lets a trusted network submit without AUTH, bound by the trusted account domains', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.2' });
    await c.command('EHLO app.local');
    expect((await c.command('MAIL FROM:<sender@example.com>')).code).toBe(553);
    expect((await c.command('MAIL FROM:<noreply@apps.example.net>')).code).toBe(250);
    expect((await c.command('RCPT TO:<one@dest.test>')).code).toBe(250);
    const r = await c.data(rawMessage(['From: noreply@apps.example.net', 'Subject: trusted'], 'hi\r\n'));
    expect(r.code).toBe(250);
    c.close();
  });

  it('lets an account created by the CLI while the daemon runs log in at once', async () => {
    addUser(t, 'late', ['late.example.com'], 'late password');
    const info = await transport(daemon.ports.submission, { user: 'late', pass: 'late password' }).sendMail({
      from: 'x@late.example.com',
      to: 'one@dest.test',
      subject: 'late',
      text: 'hi',
    });
    expect(info.response).toMatch(/queued as/);
    expect(cli(t, ['user', 'remove', 'late']).status).toBe(0);
    const err = await transport(daemon.ports.submission, { user: 'late', pass: 'late password' })
      .verify()
      .catch((e: { responseCode?: number }) => e);
    expect(err).toMatchObject({ responseCode: 535 });
  });

  it('cuts off a client that drips DATA past the deadline with 421', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(USER, PASS);
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<one@dest.test>');
    expect((await c.command('DATA')).code).toBe(354);
    const started = Date.now();
    const drip = setInterval(() => c.write('x'), 200);
    const r = await c.read();
    clearInterval(drip);
    expect(r.code).toBe(421);
    expect(Date.now() - started).toBeLessThan(6000);
  });

  it('slows and then refuses repeated AUTH failures from one address', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.3' });
    await c.command('EHLO client.test');
    await c.startTls();
    await c.command('EHLO client.test');
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) {
      codes.push(
        (await c.command(`AUTH PLAIN ${Buffer.from(`\0${USER}\0bad${i}`).toString('base64')}`)).code,
      );
      if (c.closed) break;
    }
    expect(codes.slice(0, 4)).toEqual([535, 535, 535, 535]);
    const c2 = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.3' });
    await c2.command('EHLO client.test');
    await c2.startTls();
    await c2.command('EHLO client.test');
    // Even the right password is refused while the address is blocked.
    const r = await c2.command(`AUTH PLAIN ${Buffer.from(`\0${USER}\0${PASS}`).toString('base64')}`);
    expect(r.code).toBe(454);
    c2.close();
  });

  it('never writes the addresses it handled into its log', () => {
    const out = daemon.stdoutText();
    expect(out.length).toBeGreaterThan(0);
    expect(out).not.toMatch(/@dest\.test|sender@example\.com|noreply@apps/);
    expect(out).not.toContain(PASS);
  });
});
