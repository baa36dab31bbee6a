import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalizeBodyRelaxed,
  canonicalizeHeaderRelaxed,
  hashBodyRelaxed,
  splitMessage,
} from '../../../src/dkim/index.js';

const bodyOf = (text: string): string =>
  canonicalizeBodyRelaxed(Buffer.from(text, 'latin1')).toString('latin1');

describe('relaxed canonicalization, RFC 6376 §3.4.5 example', () => {
  const message = Buffer.from('A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n', 'latin1');

  it('canonicalizes the example headers to "a:X" and "b:Y Z"', () => {
    const { headers } = splitMessage(message);
    expect(headers.map((h) => h.name)).toEqual(['a', 'b']);
    expect(headers.map((h) => canonicalizeHeaderRelaxed(h.text)).join('')).toBe('a:X\r\nb:Y Z\r\n');
  });

  it('canonicalizes the example body to " C" and "D E"', () => {
    expect(canonicalizeBodyRelaxed(splitMessage(message).body).toString('latin1')).toBe(' C\r\nD E\r\n');
  });
});

describe('relaxed body canonicalization', () => {
  it('keeps an empty body empty, whose SHA-256 is the well-known empty hash', () => {
    const canonical = canonicalizeBodyRelaxed(Buffer.alloc(0));
    expect(canonical.length).toBe(0);
    expect(createHash('sha256').update(canonical).digest('base64')).toBe(
      '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
    );
  });

  it('reduces a body of only empty or blank lines to nothing', () => {
    expect(bodyOf('\r\n')).toBe('');
    expect(bodyOf('\r\n\r\n\r\n')).toBe('');
    expect(bodyOf(' \r\n\t\r\n  ')).toBe('');
  });

  it('adds the missing final CRLF and drops trailing whitespace on the last line', () => {
    expect(bodyOf('hello')).toBe('hello\r\n');
    expect(bodyOf('hello \t')).toBe('hello\r\n');
    expect(bodyOf('a\r\n\r\n ')).toBe('a\r\n');
  });

  it('drops trailing empty lines but keeps empty lines inside the body', () => {
    expect(bodyOf('a\r\n\r\nb\r\n\r\n\r\n')).toBe('a\r\n\r\nb\r\n');
  });

  it('collapses whitespace runs inside lines and removes it at line ends', () => {
    expect(bodyOf('a  b\t\tc \t d \r\n\te\r\n')).toBe('a b c d\r\n e\r\n');
  });

  it('treats only SP and HTAB as whitespace, leaving NBSP, NEL and form feed bytes alone', () => {
    expect(bodyOf('a\xa0\xa0b\x85\r\nc\x0c \r\n')).toBe('a\xa0\xa0b\x85\r\nc\x0c\r\n');
  });

  it('passes bytes that are not UTF-8 through unchanged', () => {
    const body = Buffer.from([0xff, 0xfe, 0x20, 0x20, 0x80, 0xc3, 0x28, 0x0d, 0x0a]);
    expect([...canonicalizeBodyRelaxed(body)]).toEqual([0xff, 0xfe, 0x20, 0x80, 0xc3, 0x28, 0x0d, 0x0a]);
  });
});

describe('hashBodyRelaxed', () => {
  const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('base64');
  // Deterministic PRNG (mulberry32) so a failure can be replayed.
  const random = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const PIECES = [' ', '  ', '\t', '\r\n', '\r\n\r\n', 'a', 'word', '\xff\x80', '\r', '\n', '\xa0'];

  it('hashes the same as canonicalizeBodyRelaxed whatever the slice size', async () => {
    const next = random(6376);
    for (let n = 0; n < 300; n++) {
      let text = '';
      const length = Math.floor(next() * 40);
      for (let i = 0; i < length; i++) text += PIECES[Math.floor(next() * PIECES.length)];
      const body = Buffer.from(text, 'latin1');
      const expected = sha256(canonicalizeBodyRelaxed(body));
      for (const slice of [1, 2, 3, 5, 8, 1 << 18]) {
        expect((await hashBodyRelaxed(body, slice)).toString('base64'), JSON.stringify({ text, slice })).toBe(
          expected,
        );
      }
    }
  });

  it('yields to the event loop between slices of a large body', async () => {
    const body = Buffer.from('a  b\t c \r\n'.repeat(100_000));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const hash = await hashBodyRelaxed(body, 64 * 1024);
    clearInterval(timer);
    expect(hash.toString('base64')).toBe(sha256(canonicalizeBodyRelaxed(body)));
    expect(ticks).toBeGreaterThan(0);
  });
});

describe('relaxed header canonicalization', () => {
  it('lower-cases only the name and unfolds the value', () => {
    expect(canonicalizeHeaderRelaxed('SuBJeCT:  Hello\r\n   World \t')).toBe('subject:Hello World\r\n');
  });

  it('keeps 8-bit header bytes (RFC 6532) and NBSP as they are', () => {
    expect(canonicalizeHeaderRelaxed('Subject: Gr\xc3\xbc\xc3\x9fe\xa0 ')).toBe(
      'subject:Gr\xc3\xbc\xc3\x9fe\xa0\r\n',
    );
  });

  it('handles a colon in the value and an empty value', () => {
    expect(canonicalizeHeaderRelaxed('X-Time : 10:30 ')).toBe('x-time:10:30\r\n');
    expect(canonicalizeHeaderRelaxed('X-Empty:\r\n ')).toBe('x-empty:\r\n');
  });
});

describe('splitMessage', () => {
  it('treats a message with no blank line as all header and no body', () => {
    const { headers, body } = splitMessage(Buffer.from('From: a@b\r\nSubject: x\r\n'));
    expect(headers.map((h) => h.name)).toEqual(['from', 'subject']);
    expect(body.length).toBe(0);
  });

  it('treats a message that starts with a blank line as all body', () => {
    const { headers, body } = splitMessage(Buffer.from('\r\nbody\r\n'));
    expect(headers).toEqual([]);
    expect(body.toString()).toBe('body\r\n');
  });

  it('keeps folded continuation lines with their field', () => {
    const { headers } = splitMessage(Buffer.from('To: a@b,\r\n\tc@d\r\nX: y\r\n\r\n'));
    expect(headers[0]).toEqual({ name: 'to', text: 'To: a@b,\r\n\tc@d' });
  });
});
