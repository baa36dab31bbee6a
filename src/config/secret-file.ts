import { readFileSync } from 'node:fs';
import { ConfigError, errorMessage } from '../shared/index.js';
import type { Config } from './schema.js';

/**
 * The secret held in the file named by config key `key` (one trailing newline dropped). Throws a
 * ConfigError naming the key when the file cannot be read or the secret is shorter than `minLength`.
 */
export function readSecretFile(key: string, path: string, minLength: number): string {
  let secret: string;
  try {
    secret = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `${key}: cannot read: ${errorMessage(err)}`);
  }
  if (secret.length < minLength) {
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `${key}: the secret must be at least ${minLength} characters`,
    );
  }
  return secret;
}

/** The bearer token /metrics requires, from `http.metrics_token_file`; '' when none is set. */
export function readMetricsToken(http: Config['http']): string {
  return http.metrics_token_file
    ? readSecretFile('http.metrics_token_file', http.metrics_token_file, 16)
    : '';
}

/**
 * The key that seals DKIM private keys kept in a shared spool: PETREL_SPOOL_KEY (for secret
 * stores that hand keys over in the environment), else the file `spool.key_file`; null when
 * neither is set. 32 random bytes, written as base64 or hex.
 */
export function readSpoolKey(spool: Config['spool'], env: NodeJS.ProcessEnv): Buffer | null {
  const fromEnv = env['PETREL_SPOOL_KEY'];
  if (fromEnv) return parseSpoolKey(fromEnv, 'PETREL_SPOOL_KEY');
  if (!spool.key_file) return null;
  return parseSpoolKey(readSecretFile('spool.key_file', spool.key_file, 1), 'spool.key_file');
}

function parseSpoolKey(text: string, where: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32)
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `${where}: the spool key must be 32 random bytes, base64 or hex (head -c 32 /dev/urandom | base64)`,
    );
  return key;
}
