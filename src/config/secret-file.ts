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
