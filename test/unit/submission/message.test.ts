import { describe, expect, it } from 'vitest';
import {
  checkLineEndings,
  extractAddresses,
  isProblem,
  normalizeMessage,
  parseMessage,
  rfc5322Date,
  type ParsedMessage,
} from '../../../src/submission/message.js';

const limits = { maxLineLength: 998, maxHeaderSize: 64 * 1024, maxReceivedHeaders: 3 };

function parse(text: string): ParsedMessage {
  const parsed = parseMessage(Buffer.from(text), limits);
  if (isProblem(parsed)) throw new Error(parsed.text);
  return parsed;
}

describe('checkLineEndings', () => {
  it('passes CRLF-only text', () => {
    expect(checkLineEndings(Buffer.from('a\r\nb\r\n\r\nc\r\n'), 998)).toBeNull();
  });
  it.each([
    ['bare LF', 'a\nb\r\n'],
    ['bare LF at the start', '\nb\r\n'],
    ['bare CR', 'a\rb\r\n'],
    ['CR at the very end', 'a\r\nb\r'],
    ['NUL', 'a\0b\r\n'],
    ['smuggling vector \\r\\n\\0.\\r\\n', 'a\r\n\0.\r\nb\r\n'],
  ])('refuses a %s', (_what, text) => {
    expect(checkLineEndings(Buffer.from(text), 998)?.enhanced).toBe('5.6.0');
  });
  it('refuses a line over the limit, and accepts one at the limit', () => {
    expect(checkLineEndings(Buffer.from(`${'x'.repeat(998)}\r\n`), 998)).toBeNull();
    expect(checkLineEndings(Buffer.from(`${'x'.repeat(999)}\r\n`), 998)?.text).toMatch(/longer than 998/);
    expect(checkLineEndings(Buffer.from('x'.repeat(999)), 998)?.text).toMatch(/longer than 998/);
  });
});

describe('parseMessage', () => {
  it('splits folded header fields and the body', () => {
    const p = parse('From: a@b.c\r\nSubject: one\r\n two\r\nX-Empty:\r\n\r\nbody\r\n');
    expect(p.headers.map((h) => h.name)).toEqual(['from', 'subject', 'x-empty']);
    expect(p.headers[1]!.raw.toString()).toBe('Subject: one\r\n two\r\n');
    expect(p.body.toString()).toBe('body\r\n');
  });
  it('accepts a message with headers only', () => {
    const p = parse('From: a@b.c\r\nSubject: x\r\n');
    expect(p.headers).toHaveLength(2);
    expect(p.body.length).toBe(0);
  });
  it('refuses a header block with a line that is not a field', () => {
    const r = parseMessage(Buffer.from('From: a@b.c\r\nnot a header\r\n\r\nbody'), limits);
    expect(isProblem(r) && r.enhanced).toBe('5.6.0');
  });
  it('refuses a header block over the size limit', () => {
    const big = `X-Big: ${'y'.repeat(200)}\r\n`.repeat(400);
    const r = parseMessage(Buffer.from(`${big}\r\nbody`), limits);
    expect(isProblem(r) && r.enhanced).toBe('5.3.4');
  });
  it('refuses more Received headers than the hop limit with 5.4.6', () => {
    const r = parseMessage(Buffer.from('Received: a\r\n'.repeat(4) + 'From: a@b.c\r\n\r\nx'), limits);
    expect(isProblem(r) && r.enhanced).toBe('5.4.6');
  });
});

describe('extractAddresses', () => {
  it.each([
    ['a@example.com', ['a@example.com']],
    ['Alice <a@example.com>', ['a@example.com']],
    ['"Smith, Alice <fake@evil.test>" <a@example.com>', ['a@example.com']],
    ['a@example.com (Alice <fake@evil.test>)', ['a@example.com']],
    ['a@example.com, b@example.org', ['a@example.com', 'b@example.org']],
    ['Team: a@example.com, b@example.org;', ['a@example.com', 'b@example.org']],
    ['=?UTF-8?B?w4Rsw6k=?= <ae@example.com>', ['ae@example.com']],
  ])('%s', (value, expected) => {
    expect(extractAddresses(value)).toEqual(expected);
  });
});

describe('normalizeMessage', () => {
  const now = new Date(Date.UTC(2026, 10, 23, 9, 5, 7));
  it('prepends Received, drops Bcc with its continuation lines, adds Message-ID and Date', () => {
    const p = parse('From: a@b.c\r\nBcc: x@y.z,\r\n\tw@y.z\r\nSubject: s\r\n\r\nbody\r\n');
    const n = normalizeMessage({
      parsed: p,
      receivedHeader: 'Received: test\r\n',
      hostname: 'mta.test',
      queueId: 'Q1',
      now,
    });
    const text = n.data.toString();
    expect(text.startsWith('Received: test\r\nFrom: a@b.c\r\nSubject: s\r\nMessage-ID: <Q1.')).toBe(true);
    expect(text).toContain('Date: Mon, 23 Nov 2026 09:05:07 +0000\r\n\r\nbody\r\n');
    expect(text).not.toContain('y.z');
    expect(n.messageId).toMatch(/^<Q1\.[0-9a-f]+@mta\.test>$/);
  });
  it('keeps an existing Message-ID and Date untouched', () => {
    const p = parse('Date: whenever\r\nMessage-ID: <keep@me>\r\nFrom: a@b.c\r\n\r\nbody');
    const n = normalizeMessage({
      parsed: p,
      receivedHeader: 'Received: r\r\n',
      hostname: 'h',
      queueId: 'Q',
      now,
    });
    expect(n.data.toString()).toBe(
      'Received: r\r\nDate: whenever\r\nMessage-ID: <keep@me>\r\nFrom: a@b.c\r\n\r\nbody',
    );
    expect(n.messageId).toBe('<keep@me>');
  });
  it('formats dates as RFC 5322', () => {
    expect(rfc5322Date(new Date(Date.UTC(2026, 0, 4, 23, 59, 0)))).toBe('Sun, 4 Jan 2026 23:59:00 +0000');
  });
});

describe('parseMessage and control characters', () => {
  it.each([
    ['ESC', 'Subject: a\x1bb\r\n\r\nbody\r\n'],
    ['BEL in a field name position', 'X\x07: 1\r\n\r\nbody\r\n'],
    ['DEL', 'Subject: a\x7fb\r\n\r\nbody\r\n'],
    ['VT in a continuation', 'Subject: a\r\n \x0bb\r\n\r\nbody\r\n'],
  ])('refuses %s in the header block with 554 5.6.0', (_what, text) => {
    expect(parseMessage(Buffer.from(text), limits)).toMatchObject({
      code: 554,
      enhanced: '5.6.0',
      text: 'Message header contains a control character',
    });
  });
  it('passes HTAB in headers and control characters in the body', () => {
    const parsed = parse('Subject:\ta\tb\r\n\r\nbody\x1b\x7f\r\n');
    expect(parsed.headers.map((h) => h.name)).toEqual(['subject']);
  });
});
