import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createSigner,
  dnsRecord,
  parsePrivateKey,
  type DkimDnsRecord,
  type DkimKey,
} from '../../../src/dkim/index.js';
import { dkimpyAvailable, dkimpyVerdicts, mailauthVerdicts } from './verifiers.js';

const fixture = (name: string): Buffer =>
  readFileSync(fileURLToPath(new URL(`../../../fixtures/dkim/${name}`, import.meta.url)));

const rsaKey = parsePrivateKey(fixture('test-key.pem'));
const edKey = parsePrivateKey(fixture('test-key-ed25519.pem'));
const RSA: DkimKey = { domain: 'example.com', selector: 'rsa1', algorithm: 'rsa-sha256', privateKey: rsaKey };
const ED: DkimKey = {
  domain: 'example.com',
  selector: 'ed1',
  algorithm: 'ed25519-sha256',
  privateKey: edKey,
};
const RECORDS: DkimDnsRecord[] = [
  dnsRecord('rsa1', 'example.com', 'rsa', rsaKey),
  dnsRecord('ed1', 'example.com', 'ed25519', edKey),
];

const NOW = Date.parse('2025-03-01T12:00:00Z');
const signer = createSigner({ clock: { now: () => NOW } });
// mailauth checks t= against its own clock; a signature from the future would be refused.
const HEADERS =
  'From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nSubject: Hello\r\nDate: Sat, 01 Mar 2025 12:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n';

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

const MESSAGES: Record<string, Buffer> = {
  'simple text': latin1(`${HEADERS}\r\nHello Bob,\r\n\r\nsee you.\r\n`),
  '8-bit UTF-8 body': Buffer.concat([
    latin1(
      `${HEADERS}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`,
    ),
    Buffer.from('Grüße aus Köln — 東京 🚀\r\nΚαλημέρα\r\n', 'utf8'),
  ]),
  'binary-ish body that is not UTF-8': Buffer.concat([
    latin1(`${HEADERS}Content-Type: application/octet-stream\r\n\r\n`),
    Buffer.from([
      0xff, 0xfe, 0x80, 0x81, 0xc3, 0x28, 0x20, 0x20, 0xa0, 0x09, 0x0d, 0x0a, 0xe2, 0x82, 0x0d, 0x0a, 0xf0,
      0x90, 0x28,
    ]),
  ]),
  'long folded headers': latin1(
    `From: Ann <ann@example.com>\r\nTo: ${Array.from({ length: 30 }, (_, i) => `user${i}@example.org`).join(',\r\n\t')}\r\n` +
      `Subject: ${'word '.repeat(60)}\r\n  continued\r\nList-Unsubscribe: <https://example.com/u/${'x'.repeat(300)}>,\r\n <mailto:u@example.com>\r\n` +
      'List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nFeedback-ID: c1:c2:c3:sender\r\n\r\nbody\r\n',
  ),
  'trailing empty lines': latin1(`${HEADERS}\r\nline\r\n\r\n\r\n\r\n`),
  'empty body': latin1(`${HEADERS}\r\n`),
  'header names in odd case': latin1(
    'fROM: ann@example.com\r\nto: bob@example.org\r\nSUBJECT: odd\r\nmessage-id: <m2@example.com>\r\nCc: c@example.org\r\ncc: d@example.org\r\nReply-TO: r@example.com\r\n\r\nx\r\n',
  ),
  'tabs and whitespace runs': latin1(
    `From:\tann@example.com\r\nTo:  bob@example.org  \r\nSubject:\t  many   \t spaces \t\r\n\r\n  a \t b  \r\n\t\tindented\t\r\n \r\n`,
  ),
  '8-bit header bytes': Buffer.concat([
    latin1(`${HEADERS}X-Tag: 1\r\n`),
    Buffer.from('Reply-To: Jörg <j@example.com>\r\n\r\nok\r\n', 'utf8'),
  ]),
};

const hasDkimpy = dkimpyAvailable();
const requireDkimpy = process.env['PETREL_SKIP_DKIMPY'] !== '1';

async function signed(message: Buffer, keys: DkimKey[]): Promise<Buffer> {
  return Buffer.concat([await signer.sign(message, keys), message]);
}

beforeAll(() => {
  if (!hasDkimpy && requireDkimpy) {
    throw new Error('dkimpy not found: apt-get install -y python3-dkim (or set PETREL_SKIP_DKIMPY=1)');
  }
});

describe.each([
  ['rsa-sha256', [RSA]],
  ['ed25519-sha256', [ED]],
  ['rsa-sha256 and ed25519-sha256 together', [RSA, ED]],
])('signatures with %s', (_label, keys) => {
  it.each(Object.entries(MESSAGES))('verify with mailauth and dkimpy: %s', async (_name, message) => {
    const out = await signed(message, keys);
    expect(await mailauthVerdicts(out, RECORDS)).toEqual(keys.map(() => 'pass'));
    if (hasDkimpy) expect(await dkimpyVerdicts(out, RECORDS)).toEqual(keys.map(() => true));
  });
});

describe('messages some verifiers read differently', () => {
  it('verifies a message that is only a header block, without the blank line', async () => {
    const out = await signed(latin1(HEADERS), [RSA, ED]);
    if (hasDkimpy) expect(await dkimpyVerdicts(out, RECORDS)).toEqual([true, true]);
    // mailauth finds no header fields until the blank line; an empty body canonicalizes the same.
    expect(await mailauthVerdicts(Buffer.concat([out, latin1('\r\n')]), RECORDS)).toEqual(['pass', 'pass']);
  });

  it('verifies with mailauth a field with whitespace before its colon (dkimpy refuses the message)', async () => {
    const out = await signed(latin1(`${HEADERS}Subject :  spaced \r\n\r\nx\r\n`), [RSA, ED]);
    expect(await mailauthVerdicts(out, RECORDS)).toEqual(['pass', 'pass']);
  });
});

describe('what a signature protects', () => {
  const message = MESSAGES['8-bit UTF-8 body']!;

  it('fails when one body byte changes', async () => {
    const out = await signed(message, [RSA, ED]);
    const tampered = Buffer.from(out);
    const at = tampered.length - 5;
    tampered[at] = tampered[at]! ^ 0x01;
    // mailauth reports a body hash mismatch as "neutral", a bad header signature as "fail".
    expect(await mailauthVerdicts(tampered, RECORDS)).toEqual(['neutral', 'neutral']);
    if (hasDkimpy) expect(await dkimpyVerdicts(tampered, RECORDS)).toEqual([false, false]);
  });

  it('fails when a signed header changes', async () => {
    const out = await signed(message, [RSA, ED]);
    const tampered = latin1(out.toString('latin1').replace('Subject: Hello', 'Subject: Hellp'));
    expect(await mailauthVerdicts(tampered, RECORDS)).toEqual(['fail', 'fail']);
    if (hasDkimpy) expect(await dkimpyVerdicts(tampered, RECORDS)).toEqual([false, false]);
  });

  it('fails when a second From is added anywhere (From is over-signed)', async () => {
    const out = (await signed(message, [RSA, ED])).toString('latin1');
    const split = out.indexOf('\r\n\r\n');
    const tampered = latin1(`${out.slice(0, split)}\r\nFrom: mallory@evil.example${out.slice(split)}`);
    expect(await mailauthVerdicts(tampered, RECORDS)).toEqual(['fail', 'fail']);
    if (hasDkimpy) expect(await dkimpyVerdicts(tampered, RECORDS)).toEqual([false, false]);
  });

  it('still verifies after Received and other unsigned fields are prepended', async () => {
    const out = await signed(message, [RSA, ED]);
    const relayed = Buffer.concat([
      latin1(
        'Received: from mta.example.com (mta.example.com [192.0.2.1])\r\n\tby mx.example.org; Sat, 1 Mar 2025 12:00:01 +0000\r\n',
      ),
      latin1('X-Spam-Score: 0.1\r\n'),
      out,
    ]);
    expect(await mailauthVerdicts(relayed, RECORDS)).toEqual(['pass', 'pass']);
    if (hasDkimpy) expect(await dkimpyVerdicts(relayed, RECORDS)).toEqual([true, true]);
  });

  it('still verifies when the body gains trailing empty lines or the headers are re-folded', async () => {
    const out = (await signed(MESSAGES['simple text']!, [RSA])).toString('latin1');
    const changed = latin1(out.replace('Subject: Hello', 'Subject:\r\n    Hello') + '\r\n\r\n');
    expect(await mailauthVerdicts(changed, RECORDS)).toEqual(['pass']);
    if (hasDkimpy) expect(await dkimpyVerdicts(changed, RECORDS)).toEqual([true]);
  });
});

describe('the DKIM-Signature field', () => {
  const tags = async (message: Buffer, keys: DkimKey[], s = signer): Promise<Map<string, string>[]> => {
    const text = (await s.sign(message, keys)).toString('latin1');
    return text
      .split(/\r\n(?![ \t])/)
      .filter(Boolean)
      .map((field) => {
        const value = field.slice(field.indexOf(':') + 1).replace(/\s+/g, '');
        return new Map(
          value
            .split(';')
            .filter(Boolean)
            .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
        );
      });
  };

  it('lists present signed fields, every instance, and From once more than it occurs', async () => {
    const [sig] = await tags(MESSAGES['header names in odd case']!, [RSA]);
    expect(sig!.get('h')).toBe('from:from:to:cc:cc:subject:message-id:reply-to');
  });

  it('carries t= from the injected clock, x= when configured, and one shared bh=', async () => {
    const expiring = createSigner({ clock: { now: () => NOW }, expireAfterSeconds: 3600 });
    const [rsa, ed] = await tags(MESSAGES['simple text']!, [RSA, ED], expiring);
    expect(rsa!.get('t')).toBe(String(NOW / 1000));
    expect(rsa!.get('x')).toBe(String(NOW / 1000 + 3600));
    expect(rsa!.get('bh')).toBe(ed!.get('bh'));
    expect([rsa!.get('a'), ed!.get('a'), rsa!.get('c'), rsa!.get('d'), ed!.get('s')]).toEqual([
      'rsa-sha256',
      'ed25519-sha256',
      'relaxed/relaxed',
      'example.com',
      'ed1',
    ]);
    expect((await tags(MESSAGES['simple text']!, [RSA]))[0]!.has('x')).toBe(false);
  });

  it('is folded into lines of at most 78 characters and ends with CRLF', async () => {
    const text = (await signer.sign(MESSAGES['long folded headers']!, [RSA, ED])).toString('latin1');
    expect(text.endsWith('\r\n')).toBe(true);
    expect(text.match(/^DKIM-Signature:/gm)).toHaveLength(2);
    for (const line of text.split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
  });

  it('matches the body hash of the RFC 8463 Appendix A example', async () => {
    const message = latin1(
      'From: Joe SixPack <joe@football.example.com>\r\nTo: Suzie Q <suzie@shopping.example.net>\r\n' +
        'Subject: Is dinner ready?\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n' +
        'Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\r\n' +
        'Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n',
    );
    const [sig] = await tags(message, [ED]);
    expect(sig!.get('bh')).toBe('2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=');
  });

  it('is empty when there are no keys', async () => {
    expect((await signer.sign(MESSAGES['simple text']!, [])).length).toBe(0);
  });
});

describe('key checks', () => {
  const message = MESSAGES['simple text']!;

  it('refuses a key that does not fit its algorithm', async () => {
    await expect(signer.sign(message, [{ ...RSA, privateKey: edKey }])).rejects.toMatchObject({
      code: 'PETREL_CONFIG_INVALID',
    });
    await expect(signer.sign(message, [{ ...ED, privateKey: rsaKey }])).rejects.toMatchObject({
      code: 'PETREL_CONFIG_INVALID',
    });
  });

  it('refuses a domain or selector that would inject tags', async () => {
    await expect(signer.sign(message, [{ ...RSA, domain: 'example.com; l=1' }])).rejects.toMatchObject({
      code: 'PETREL_CONFIG_INVALID',
    });
    await expect(signer.sign(message, [{ ...RSA, selector: 's\r\nX: y' }])).rejects.toMatchObject({
      code: 'PETREL_CONFIG_INVALID',
    });
  });
});
