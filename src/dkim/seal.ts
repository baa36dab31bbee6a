import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from '../shared/index.js';

/** Format byte of a sealed key: AES-256-GCM, 12-byte IV, 16-byte tag, then the ciphertext. */
const V1 = 1;

/**
 * Private keys kept in a shared spool (PostgreSQL) are sealed with the operator's key
 * (`[spool] key_file` or PETREL_SPOOL_KEY): the database, its backups and its replicas hold only
 * ciphertext, and every node that has the key can sign.
 */
export function sealKey(pem: string | Buffer, key: Buffer): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(pem), cipher.final()]);
  return Buffer.concat([Buffer.from([V1]), iv, cipher.getAuthTag(), body]);
}

/** The PEM inside a sealed key; throws ConfigError when the key is not the one that sealed it. */
export function openSealedKey(sealed: Buffer, key: Buffer, what: string): Buffer {
  if (sealed.length < 29 || sealed[0] !== V1)
    throw new ConfigError('PETREL_CONFIG_INVALID', `${what}: not a sealed key this Petrel can read`);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 13));
    decipher.setAuthTag(sealed.subarray(13, 29));
    return Buffer.concat([decipher.update(sealed.subarray(29)), decipher.final()]);
  } catch {
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `${what}: cannot unseal: the spool key ([spool] key_file or PETREL_SPOOL_KEY) is not the one that sealed it`,
    );
  }
}
