import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DkimDnsRecord } from '../../src/dkim/index.js';
import { cli, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import {
  addUserAsync,
  delivered,
  keygen,
  login,
  publishedRecords,
  requireDkimpy,
  signers,
  transact,
  verifyWithBoth,
} from '../helpers/dkim-check.js';
import { startSink, type ReceivedMessage, type Sink } from '../helpers/sink.js';
import { until } from '../helpers/until.js';

/*
 * RELIABILITY 40 and 41 end to end: the only MX advertises neither 8BITMIME nor SMTPUTF8 (nor
 * STARTTLS, so the sink's transcript is all that went on the wire). 8-bit mail must arrive
 * re-encoded and still DKIM-valid; a UTF-8 recipient fails with 5.6.7 and its DSN, a null-sender
 * message that nobody would hear of if it were refused, must arrive 7-bit and readable.
 */

const USER = 'app';
const PASS = 'downgrade pw';
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

const TEXT =
  'Grüße aus Köln — ünïcödé, 日本語, emoji 📨.\r\n' +
  `${'€'.repeat(300)}\r\n` +
  'Łódź  \t\r\n=3D is not an escape\r\n.\r\n';

const HEADERS =
  'From: Ann <ann@example.com>\r\nSubject: eight bit\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n' +
  'MIME-Version: 1.0\r\n';

const MESSAGES = {
  text: utf8(
    `${HEADERS}To: text@dest.test\r\nMessage-ID: <text@example.com>\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${TEXT}`,
  ),
  multipart: utf8(
    `${HEADERS}To: multi@dest.test\r\nMessage-ID: <multi@example.com>\r\n` +
      'Content-Type: multipart/mixed; boundary="=_outer"\r\n\r\n--=_outer\r\n' +
      'Content-Type: text/plain; charset=us-ascii\r\n\r\nAn ASCII part.\r\n--=_outer\r\n' +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${TEXT}\r\n--=_outer--\r\n`,
  ),
  utf8Recipient: utf8(
    'From: Ann <ann@example.com>\r\nTo: 用户@例子.广告\r\nSubject: für dich\r\nMessage-ID: <idn@example.com>\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHallo ✓\r\n',
  ),
};

/** What a server without 8BITMIME may receive: ASCII only, no line over 998 characters. */
function expectSevenBit(message: Buffer): void {
  expect(message.every((b) => b < 0x80)).toBe(true);
  for (const line of message.toString('latin1').split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
}

/** The body of each quoted-printable or base64 part has lines of at most 76 characters. */
function expectEncodedLinesShort(message: Buffer): void {
  const text = message.toString('latin1');
  const parts = text
    .split(/\r\nContent-Transfer-Encoding: (?:quoted-printable|base64)\r\n(?:.+\r\n)*\r\n/)
    .slice(1);
  expect(parts.length).toBeGreaterThan(0);
  for (const part of parts) {
    for (const line of part.split('\r\n')) {
      if (line.startsWith('--=_outer')) break;
      expect(line.length).toBeLessThanOrEqual(76);
    }
  }
}

describe('8-bit mail to a server without 8BITMIME or SMTPUTF8', () => {
  let t: TestDir;
  let sink: Sink;
  let daemon: Daemon;
  let records: DkimDnsRecord[];
  const textMessage = (): Promise<ReceivedMessage> => delivered(sink, 'text@dest.test');
  const multipartMessage = (): Promise<ReceivedMessage> => delivered(sink, 'multi@dest.test');
  /** The DSN about the UTF-8 recipient: its returned headers name the original's Message-ID. */
  const dsnMessage = (): Promise<ReceivedMessage> =>
    until(
      'the DSN',
      () => sink.messages.find((m) => m.mailFrom === '' && m.body.includes('<idn@example.com>')),
      15_000,
    );

  beforeAll(async () => {
    requireDkimpy();
    sink = await startSink({ hide8BITMIME: true, hideSMTPUTF8: true, starttls: false });
    const route = `host = "127.0.0.1"\nport = ${sink.port}\n`;
    t = makeTestDir(`
[delivery]
poll_interval = "100ms"

[routes."dest.test"]
${route}
[routes."例子.广告"]
${route}
# The sender's own MX, where the DSN goes: the same 7-bit-only sink.
[routes."example.com"]
${route}`);
    await addUserAsync(t, USER, ['example.com'], PASS);
    await keygen(t, 'example.com', 's1', 'rsa');
    [records, daemon] = await Promise.all([publishedRecords(t, 'example.com'), startDaemon(t)]);

    const c = await login(daemon.ports.submission, USER, PASS);
    for (const [name, rcpt] of [
      ['text', 'text@dest.test'],
      ['multipart', 'multi@dest.test'],
      ['utf8Recipient', '用户@例子.广告'],
    ] as const) {
      const reply = await transact(c, 'sender@example.com', rcpt, MESSAGES[name]);
      if (reply.code !== 250) throw new Error(`${name}: ${reply.text}`);
    }
    c.close();
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await sink?.close();
    t?.cleanup();
  });

  it('delivers an 8-bit UTF-8 text body as 7-bit quoted-printable that decodes to the original', async () => {
    const m = await textMessage();
    expect(m.action).toMatchObject({ code: 250 });
    expectSevenBit(m.body);
    expectEncodedLinesShort(m.body);
    expect(m.body.toString('latin1')).toContain('Content-Transfer-Encoding: quoted-printable\r\n');
    const parsed = await simpleParser(m.body);
    expect(parsed.text).toBe(TEXT.replace(/\r\n/g, '\n'));
  });

  it('delivers a multipart message with an 8-bit part, that part re-encoded and the text unchanged', async () => {
    const m = await multipartMessage();
    expectSevenBit(m.body);
    expectEncodedLinesShort(m.body);
    const text = m.body.toString('latin1');
    expect(text).toContain(
      'Content-Type: text/plain; charset=us-ascii\r\n\r\nAn ASCII part.\r\n--=_outer\r\n',
    );
    expect(text).not.toContain('Content-Transfer-Encoding: 8bit');
    const parsed = await simpleParser(m.body);
    expect(parsed.text).toBe(`An ASCII part.\n${TEXT.replace(/\r\n/g, '\n')}`);
  });

  it('signs the downgraded messages again, so that mailauth and dkimpy verify them at the sink', async () => {
    for (const { body } of [await textMessage(), await multipartMessage()]) {
      // One signature: Petrel's, made over the 7-bit form; the one over the 8-bit form is gone.
      expect(signers(body)).toEqual(['example.com/s1/rsa-sha256']);
      expect(await verifyWithBoth(body, records)).toEqual({ mailauth: ['pass'], dkimpy: [true] });
    }
  });

  it('sends no raw UTF-8 on the wire and no other DSN, the UTF-8 recipient included', async () => {
    await Promise.all([textMessage(), multipartMessage(), dsnMessage()]);
    expect(sink.messages.filter((m) => m.mailFrom === '')).toHaveLength(1);
    expect(sink.plaintextTranscript()).not.toMatch(/[\u0080-\uffff]/);
    expect(sink.messages.some((m) => m.rcptTo.some((r) => r.includes('例子')))).toBe(false);
  });

  it('delivers the DSN for the UTF-8 recipient (5.6.7) 7-bit, readable by mailparser', async () => {
    const dsn = await dsnMessage();
    expect(dsn.rcptTo).toEqual(['sender@example.com']);
    expect(dsn.action).toMatchObject({ code: 250 });
    expectSevenBit(dsn.body);
    const parsed = await simpleParser(dsn.body);
    expect(parsed.headers.get('content-type')).toMatchObject({
      value: 'multipart/report',
      params: { 'report-type': 'delivery-status' },
    });
    expect(parsed.text).toContain('<用户@例子.广告>: was refused');
    expect(parsed.text).toContain('Action: failed');
    expect(parsed.text).toContain('Status: 5.6.7');
    const returned = parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers');
    expect(returned?.content.toString('utf8')).toContain('To: 用户@例子.广告\r\n');
  });

  it('writes a DSN that `petrel bounce classify --json` reads: the UTF-8 recipient and its status', async () => {
    const file = join(t.dir, 'dsn.eml');
    writeFileSync(file, (await dsnMessage()).body);
    const r = cli(null, ['bounce', 'classify', '--json', file]);
    expect(r.status).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, string>);
    expect(rows).toMatchObject([
      { kind: 'dsn', recipient: '用户@例子.广告', status: '5.6.7', action: 'failed' },
    ]);
  });
});
