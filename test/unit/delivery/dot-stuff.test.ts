import { describe, expect, it } from 'vitest';
import { dotStuffed, endOfData } from '../../../src/delivery/dot-stuff.js';

function wire(message: string | Buffer): string {
  const bytes = Buffer.from(message);
  return Buffer.concat([...dotStuffed(bytes), endOfData(bytes)]).toString('latin1');
}

/** What nodemailer's DataStream made of the same bytes, byte by byte: the reference. */
function reference(message: Buffer): string {
  let out = '';
  let prev: number | null = null;
  for (const byte of message) {
    if (prev === 0x0d && byte !== 0x0a) out += byte === 0x2e ? '\n.' : '\n';
    else if (byte === 0x0a && prev !== 0x0d) out += '\r';
    else if (byte === 0x2e && (prev === 0x0a || prev === null)) out += '.';
    out += String.fromCharCode(byte);
    prev = byte;
  }
  return out + (prev === 0x0a ? '.\r\n' : prev === 0x0d ? '\n.\r\n' : '\r\n.\r\n');
}

describe('dotStuffed', () => {
  it('doubles a dot at the start of the body and after every CRLF', () => {
    expect(wire('.a\r\n.b\r\n..c\r\nd.e\r\n')).toBe('..a\r\n..b\r\n...c\r\nd.e\r\n.\r\n');
  });

  it('ends a message without a final line break with CRLF before the dot', () => {
    expect(wire('a\r\nb')).toBe('a\r\nb\r\n.\r\n');
    expect(wire('')).toBe('\r\n.\r\n');
  });

  it('turns bare CR and bare LF into CRLF, so no other line break reaches the server', () => {
    expect(wire('a\n.\nb\r.\rc')).toBe('a\r\n..\r\nb\r\n..\r\nc\r\n.\r\n');
    expect(wire('a\r')).toBe('a\r\n.\r\n');
  });

  it('writes a message that needs nothing changed as one view of the given bytes', () => {
    const message = Buffer.from('Subject: x\r\n\r\nbody\r\n');
    const pieces = [...dotStuffed(message)];
    expect(pieces).toHaveLength(1);
    expect(pieces[0]!.buffer).toBe(message.buffer);
  });

  it('agrees with the byte-by-byte rules on random messages', () => {
    const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0xc3];
    let seed = 7;
    for (let n = 0; n < 2000; n++) {
      const bytes = Buffer.alloc(n % 23);
      for (let i = 0; i < bytes.length; i++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        bytes[i] = alphabet[seed % alphabet.length]!;
      }
      expect(wire(bytes)).toBe(reference(bytes));
    }
  });
});
