import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createKeyCache,
  createKeyRing,
  generateKey,
  openSealedKey,
  sealKey,
} from '../../../src/dkim/index.js';

describe('sealed DKIM keys (a spool shared by several nodes)', () => {
  it('seals a private key so that only the same spool key opens it, and the ciphertext holds no PEM', async () => {
    const key = await generateKey('rsa');
    const spoolKey = randomBytes(32);
    const sealed = sealKey(key.privateKeyPem, spoolKey);
    expect(sealed.includes(Buffer.from('PRIVATE KEY'))).toBe(false);
    expect(openSealedKey(sealed, spoolKey, 'k').toString()).toBe(key.privateKeyPem);
    // A fresh IV each time: the same key seals differently.
    expect(sealKey(key.privateKeyPem, spoolKey).equals(sealed)).toBe(false);
    expect(() => openSealedKey(sealed, randomBytes(32), 'dkim key a/b')).toThrow(/cannot unseal/);
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => openSealedKey(tampered, spoolKey, 'k')).toThrow(/cannot unseal/);
  });

  it('signs with a sealed key from the key table, and names the missing spool key otherwise', async () => {
    const key = await generateKey('ed25519');
    const spoolKey = randomBytes(32);
    const ref = {
      domain: 'example.com',
      selector: 's1',
      privateKeyPath: 'spool:example.com/s1',
      sealedKey: sealKey(key.privateKeyPem, spoolKey),
    };
    const ring = createKeyRing(
      async () => [ref],
      createKeyCache(),
      (s, what) => openSealedKey(s, spoolKey, what),
    );
    expect(await ring.refresh()).toEqual([]);
    expect(ring.keysFor('mail.example.com').map((k) => k.selector)).toEqual(['s1']);
    const keyless = createKeyRing(async () => [ref], createKeyCache());
    const [failure] = await keyless.refresh();
    expect(failure?.error.message).toMatch(/set \[spool\] key_file \(or PETREL_SPOOL_KEY\)/);
    expect(keyless.keysFor('example.com')).toEqual([]);
  });
});
