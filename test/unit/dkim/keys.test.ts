import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  algorithmOf,
  createKeyCache,
  createSigner,
  dnsRecord,
  generateKey,
  parsePrivateKey,
} from '../../../src/dkim/index.js';
import { mailauthVerdicts } from './verifiers.js';

const fixturePath = (name: string): string =>
  fileURLToPath(new URL(`../../../fixtures/dkim/${name}`, import.meta.url));
const MESSAGE = Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject: k\r\n\r\nbody\r\n');

describe('generateKey and dnsRecord', () => {
  it('makes an RSA-2048 key whose TXT record verifies its signatures', async () => {
    const key = await generateKey('rsa');
    const privateKey = parsePrivateKey(key.privateKeyPem);
    expect(privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const record = dnsRecord('s1', 'example.com', 'rsa', key.publicKeyDerBase64);
    expect(record.name).toBe('s1._domainkey.example.com');
    expect(record.value).toBe(`v=DKIM1; k=rsa; p=${key.publicKeyDerBase64}`);
    const header = await createSigner().sign(MESSAGE, [
      { domain: 'example.com', selector: 's1', algorithm: algorithmOf(privateKey), privateKey },
    ]);
    expect(await mailauthVerdicts(Buffer.concat([header, MESSAGE]), [record])).toEqual(['pass']);
  });

  it('splits long values into strings of at most 255 characters for zone files', async () => {
    const key = await generateKey('rsa', 3072);
    const record = dnsRecord('big', 'example.com.', 'rsa', key.publicKeyDerBase64);
    expect(record.strings.length).toBeGreaterThan(2);
    for (const s of record.strings) expect(s.length).toBeLessThanOrEqual(255);
    expect(record.strings.join('')).toBe(record.value);
    expect(record.zoneLine).toBe(
      `big._domainkey.example.com. IN TXT ( ${record.strings.map((s) => `"${s}"`).join(' ')} )`,
    );
  });

  it('publishes an Ed25519 key as its bare 32 bytes (RFC 8463), not as SPKI', async () => {
    const key = await generateKey('ed25519');
    const record = dnsRecord('ed', 'example.com', 'ed25519', key.publicKeyDerBase64);
    const p = record.value.match(/^v=DKIM1; k=ed25519; p=([A-Za-z0-9+/=]+)$/)![1]!;
    const raw = Buffer.from(p, 'base64');
    expect(raw.length).toBe(32);
    expect(Buffer.from(key.publicKeyDerBase64, 'base64').subarray(-32)).toEqual(raw);
    expect(record.strings).toEqual([record.value]);
  });

  it('accepts the public key as PEM, as a public KeyObject or as the private KeyObject', () => {
    const privateKey = parsePrivateKey(readFileSync(fixturePath('test-key-ed25519.pem')));
    const publicKey = createPublicKey(privateKey);
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const values = [privateKey, publicKey, pem].map((k) => dnsRecord('s', 'example.com', 'ed25519', k).value);
    expect(new Set(values).size).toBe(1);
  });

  it('refuses a key of the other family and RSA keys under 1024 bits', async () => {
    const ed = parsePrivateKey(readFileSync(fixturePath('test-key-ed25519.pem')));
    expect(() => dnsRecord('s', 'example.com', 'rsa', ed)).toThrow(/not rsa/);
    await expect(generateKey('rsa', 512)).rejects.toMatchObject({ code: 'PETREL_CONFIG_INVALID' });
  });
});

describe('parsePrivateKey', () => {
  it('refuses text that is not a private key, without echoing it', () => {
    expect(() => parsePrivateKey('secret-looking garbage', 'dkim key /etc/k.pem')).toThrow(
      /^dkim key \/etc\/k\.pem: not a PEM/,
    );
    expect(() => parsePrivateKey('secret-looking garbage')).not.toThrow(/garbage/);
  });
});

describe('createKeyCache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-dkim-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and parses a file once, even for concurrent first calls', async () => {
    let reads = 0;
    const cache = createKeyCache(async (path) => {
      reads++;
      return readFileSync(path);
    });
    const [a, b] = await Promise.all([
      cache.get(fixturePath('test-key.pem')),
      cache.get(fixturePath('test-key.pem')),
    ]);
    const c = await cache.get(fixturePath('test-key.pem'));
    expect(reads).toBe(1);
    expect(a).toBe(b);
    expect(a).toBe(c);
    expect(a.asymmetricKeyType).toBe('rsa');
  });

  it('does not cache a failed load, so a fixed file is picked up', async () => {
    const path = join(dir, 'later.pem');
    const cache = createKeyCache();
    await expect(cache.get(path)).rejects.toMatchObject({ code: 'PETREL_CONFIG_INVALID' });
    writeFileSync(path, readFileSync(fixturePath('test-key-ed25519.pem')));
    expect((await cache.get(path)).asymmetricKeyType).toBe('ed25519');
  });

  it('reloads changed files and keeps the previous key when a file turns bad', async () => {
    const good = join(dir, 'good.pem');
    const bad = join(dir, 'bad.pem');
    writeFileSync(good, readFileSync(fixturePath('test-key.pem')));
    writeFileSync(bad, readFileSync(fixturePath('test-key.pem')));
    const cache = createKeyCache();
    const before = await cache.get(bad);
    await cache.get(good);
    writeFileSync(good, readFileSync(fixturePath('test-key-ed25519.pem')));
    writeFileSync(bad, 'truncated');
    const failures = await cache.reload();
    expect(failures.map((f) => f.path)).toEqual([bad]);
    expect(failures[0]!.error.code).toBe('PETREL_CONFIG_INVALID');
    expect((await cache.get(good)).asymmetricKeyType).toBe('ed25519');
    expect(await cache.get(bad)).toBe(before);
  });
});
