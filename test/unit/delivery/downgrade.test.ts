import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { downgradeTo7Bit } from '../../../src/delivery/index.js';

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Every line ASCII and at most 76 characters: what a server without 8BITMIME may receive. */
function expectSevenBit(message: Buffer, maxLine = 998): void {
  expect(message.every((b) => b < 0x80)).toBe(true);
  const head = message.indexOf('\r\n\r\n');
  const body = message.subarray(head + 4).toString('latin1');
  for (const line of body.split('\r\n')) expect(line.length).toBeLessThanOrEqual(maxLine);
}

const TEXT =
  'Grüße aus Köln — ünïcödé, 日本語, emoji 📨.\r\n' +
  `${'€'.repeat(120)}\r\n` +
  'trailing  \t\r\n=equals= \r\n.dot\r\n';
const BINARY = Buffer.from(Array.from({ length: 600 }, (_v, i) => (i * 37) % 256));

describe('downgrading a message to 7 bits', () => {
  it('turns a non-MIME 8-bit body into quoted-printable UTF-8 text that decodes to the original', async () => {
    const out = downgradeTo7Bit(utf8(`From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\n${TEXT}`))!;
    expectSevenBit(out, 76);
    const text = out.toString('latin1');
    expect(text).toContain('\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n');
    expect(text).toContain('Content-Transfer-Encoding: quoted-printable\r\n\r\n');
    const parsed = await simpleParser(out);
    expect(parsed.text).toBe(TEXT.replace(/\r\n/g, '\n'));
  });

  it('re-encodes 8bit text parts as quoted-printable and binary parts as base64, keeping 7-bit parts', async () => {
    const message = Buffer.concat([
      utf8(
        'From: a@x.test\r\nSubject: mixed\r\nMIME-Version: 1.0\r\n' +
          'Content-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n--b1\r\n' +
          'Content-Type: text/plain; charset=us-ascii\r\n\r\nplain ascii\r\n--b1\r\n' +
          'Content-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\n' +
          `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${TEXT}\r\n--b2\r\n` +
          `Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<p>${TEXT}</p>\r\n--b2--\r\n--b1\r\n` +
          'Content-Type: application/octet-stream; name=blob.bin\r\nContent-Disposition: attachment; filename=blob.bin\r\n' +
          'Content-Transfer-Encoding: binary\r\n\r\n',
      ),
      BINARY,
      utf8('\r\n--b1--\r\nepilogue ü\r\n'),
    ]);
    const out = downgradeTo7Bit(message)!;
    expectSevenBit(out, 76);
    const text = out.toString('latin1');
    expect(text).toContain('Content-Type: text/plain; charset=us-ascii\r\n\r\nplain ascii\r\n--b1\r\n');
    expect(text.match(/Content-Transfer-Encoding: quoted-printable/g)).toHaveLength(2);
    expect(text).toContain('Content-Transfer-Encoding: base64\r\n');
    expect(text).not.toMatch(/Content-Transfer-Encoding: (8bit|binary)/);
    const parsed = await simpleParser(out);
    expect(parsed.text).toBe(`plain ascii\n${TEXT.replace(/\r\n/g, '\n')}`);
    expect(parsed.html).toContain('Grüße aus Köln');
    const blob = parsed.attachments.find((a) => a.filename === 'blob.bin');
    expect(blob?.content.equals(BINARY)).toBe(true);
  });

  it('encodes 8-bit unstructured header fields as RFC 2047 words', async () => {
    const subject = 'Grüße aus Köln, ein ziemlich langer Betreff mit ünïcödé und 日本語';
    const out = downgradeTo7Bit(utf8(`From: a@x.test\r\nSubject: ${subject}\r\n\r\nok\r\n`))!;
    expect(out.every((b) => b < 0x80)).toBe(true);
    for (const line of out.toString('latin1').split('\r\n')) expect(line.length).toBeLessThanOrEqual(76);
    expect((await simpleParser(out)).subject).toBe(subject);
  });

  it('walks into an attached message/rfc822 instead of encoding it', async () => {
    const out = downgradeTo7Bit(
      utf8(
        'From: a@x.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n' +
          'Content-Type: message/rfc822\r\n\r\nFrom: c@z.test\r\nSubject: inner\r\n\r\nKöln\r\n--x--\r\n',
      ),
    )!;
    expectSevenBit(out);
    const text = out.toString('latin1');
    expect(text).toContain(
      'Content-Type: message/rfc822\r\n\r\nFrom: c@z.test\r\nSubject: inner\r\nMIME-Version: 1.0\r\n',
    );
    expect(text).toContain('K=C3=B6ln');
  });

  it('returns a 7-bit message unchanged', () => {
    const message = utf8('From: a@x.test\r\nSubject: =?utf-8?q?K=C3=B6ln?=\r\n\r\nascii only\r\n');
    expect(downgradeTo7Bit(message)!.equals(message)).toBe(true);
  });

  it.each([
    ['an 8-bit address field', 'From: Jörg <j@x.test>\r\n\r\nbody ü\r\n'],
    ['8-bit bytes under base64', 'MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nü\r\n'],
    [
      'a multipart body without its boundary',
      'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\nü\r\n',
    ],
  ])('refuses a message it cannot downgrade: %s', (_what, message) => {
    expect(downgradeTo7Bit(utf8(message))).toBeNull();
  });
});
