import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { ConfigError, errorMessage } from '../shared/index.js';
import type { DkimAlgorithm } from './signer.js';

/** Key families Petrel can generate and sign with. */
export type KeyAlgorithm = 'rsa' | 'ed25519';

/** A fresh key pair, as `petrel dkim keygen` stores and prints it. */
export interface GeneratedKey {
  /** PKCS#8 PEM; store it with mode 0600. */
  readonly privateKeyPem: string;
  /** SubjectPublicKeyInfo DER, base64 (for RSA this is also the DNS `p=` value). */
  readonly publicKeyDerBase64: string;
}

/** The TXT record that publishes a public key. */
export interface DkimDnsRecord {
  /** Owner name without the final dot: `<selector>._domainkey.<domain>`. */
  readonly name: string;
  /** The record text in one piece, as DNS APIs and providers' web forms take it. */
  readonly value: string;
  /** `value` cut into character-strings of at most 255 bytes, for zone files. */
  readonly strings: readonly string[];
  /** One zone-file line: `name. IN TXT ( "…" "…" )`. */
  readonly zoneLine: string;
}

/**
 * Generates a signing key pair off the event loop. `bits` applies to RSA only; below 1024
 * receivers reject the signature, and 2048 is what they expect today.
 */
export async function generateKey(algo: KeyAlgorithm, bits = 2048): Promise<GeneratedKey> {
  if (algo === 'rsa' && (!Number.isInteger(bits) || bits < 1024)) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `dkim: RSA keys need at least 1024 bits, got ${bits}`);
  }
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>(
    (resolve, reject) => {
      const done = (err: Error | null, pub: KeyObject, priv: KeyObject): void => {
        if (err) reject(err);
        else resolve({ privateKey: priv, publicKey: pub });
      };
      if (algo === 'rsa') generateKeyPair('rsa', { modulusLength: bits }, done);
      else generateKeyPair('ed25519', {}, done);
    },
  );
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyDerBase64: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
  };
}

/**
 * Parses a PEM private key once, for {@link DkimKey.privateKey}. Throws ConfigError (naming
 * `origin`, never the key) when the text is not an RSA or Ed25519 private key.
 */
export function parsePrivateKey(pem: string | Buffer, origin = 'dkim key'): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `${origin}: not a PEM private key: ${errorMessage(err)}`);
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `${origin}: ${key.asymmetricKeyType ?? 'unknown'} keys cannot sign DKIM`,
    );
  }
  return key;
}

/** The DKIM algorithm a parsed key signs with, so configuration need not repeat it. */
export function algorithmOf(key: KeyObject): DkimAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'rsa-sha256';
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519-sha256';
  throw new ConfigError(
    'PETREL_CONFIG_INVALID',
    `dkim: ${key.asymmetricKeyType ?? 'unknown'} keys cannot sign DKIM`,
  );
}

/**
 * The DNS TXT record for a public key. `publicKey` is a KeyObject (public, or the private key
 * it belongs to), a PEM text, or {@link GeneratedKey.publicKeyDerBase64}. RSA publishes the
 * SubjectPublicKeyInfo DER (RFC 6376 §3.6.1); Ed25519 publishes the bare 32-byte key
 * (RFC 8463 §4), which is not what an SPKI export gives.
 */
export function dnsRecord(
  selector: string,
  domain: string,
  algo: KeyAlgorithm,
  publicKey: KeyObject | string,
): DkimDnsRecord {
  const key = toPublicKey(publicKey);
  if (key.asymmetricKeyType !== algo) {
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `dkim: the key is ${key.asymmetricKeyType ?? 'unknown'}, not ${algo}`,
    );
  }
  const p =
    algo === 'rsa'
      ? key.export({ type: 'spki', format: 'der' }).toString('base64')
      : Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
  const name = `${selector}._domainkey.${domain.replace(/\.$/, '')}`;
  const value = `v=DKIM1; k=${algo}; p=${p}`;
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(value.slice(i, i + 255));
  const zoneLine = `${name}. IN TXT ( ${strings.map((s) => `"${s}"`).join(' ')} )`;
  return { name, value, strings, zoneLine };
}

function toPublicKey(input: KeyObject | string): KeyObject {
  try {
    if (typeof input !== 'string') return input.type === 'public' ? input : createPublicKey(input);
    if (input.includes('-----BEGIN')) return createPublicKey(input);
    return createPublicKey({ key: Buffer.from(input, 'base64'), format: 'der', type: 'spki' });
  } catch (err) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `dkim: not a public key: ${errorMessage(err)}`);
  }
}
