import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  createSigner,
  dnsRecord,
  parsePrivateKey,
  resignMessage,
  type DkimKey,
} from '../../../src/dkim/index.js';
import { mailauthVerdicts } from './verifiers.js';

const fixture = (name: string): Buffer =>
  readFileSync(fileURLToPath(new URL(`../../../fixtures/dkim/${name}`, import.meta.url)));

const rsaKey = parsePrivateKey(fixture('test-key.pem'));
const edKey = parsePrivateKey(fixture('test-key-ed25519.pem'));
const OWN: DkimKey = { domain: 'example.com', selector: 'rsa1', algorithm: 'rsa-sha256', privateKey: rsaKey };
/** Someone else's key: Petrel does not hold it, so its signature is not Petrel's to replace. */
const AUTHOR: DkimKey = {
  domain: 'author.test',
  selector: 'a1',
  algorithm: 'ed25519-sha256',
  privateKey: edKey,
};
const RECORDS = [
  dnsRecord('rsa1', 'example.com', 'rsa', rsaKey),
  dnsRecord('a1', 'author.test', 'ed25519', edKey),
];

const signer = createSigner();
const held = (domain: string): readonly DkimKey[] => (domain === 'example.com' ? [OWN] : []);

const signed = async (message: Buffer, key: DkimKey): Promise<Buffer> =>
  Buffer.concat([await signer.sign(message, [key]), message]);

const MESSAGE = Buffer.from(
  'From: Ann <ann@example.com>\r\nTo: bob@dest.test\r\nSubject: hi\r\n' +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nK\xf6ln\r\n',
  'latin1',
);

describe('re-signing a changed message', () => {
  it('replaces the signatures Petrel added on top and keeps the author’s below them', async () => {
    const stored = await signed(await signed(MESSAGE, AUTHOR), OWN);
    // The body changes under both signatures, as a 7-bit downgrade does.
    const changed = Buffer.from(
      stored.toString('latin1').replace('8bit\r\n\r\nK\xf6ln', 'quoted-printable\r\n\r\nK=F6ln'),
      'latin1',
    );
    expect(await mailauthVerdicts(changed, RECORDS)).not.toContain('pass');
    const out = await resignMessage(changed, signer, held);
    const text = out.toString('latin1');
    expect(text.match(/^DKIM-Signature:/gm)).toHaveLength(2);
    expect(text.indexOf('d=example.com')).toBeLessThan(text.indexOf('d=author.test'));
    const verdicts = await mailauthVerdicts(out, RECORDS);
    expect(verdicts[0]).toBe('pass');
    expect(verdicts[1]).not.toBe('pass');
  });

  it('leaves a message alone whose first signature is not one of Petrel’s', async () => {
    const stored = await signed(await signed(MESSAGE, OWN), AUTHOR);
    expect((await resignMessage(stored, signer, held)).equals(stored)).toBe(true);
    expect((await resignMessage(MESSAGE, signer, held)).equals(MESSAGE)).toBe(true);
  });

  it('signs with the domain’s current key when the signing selector is gone', async () => {
    const old: DkimKey = { ...OWN, selector: 'retired' };
    const out = await resignMessage(await signed(MESSAGE, old), signer, held);
    expect(out.toString('latin1')).toMatch(/ s=rsa1;/);
    expect(await mailauthVerdicts(out, RECORDS)).toEqual(['pass']);
  });
});
