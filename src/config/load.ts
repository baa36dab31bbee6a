import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { z } from 'zod';
import { ConfigError, errorMessage } from '../shared/index.js';
import { configSchema, type Config } from './schema.js';

/** Where the configuration came from, for messages. */
export type ConfigSource = { kind: 'file'; path: string } | { kind: 'defaults' };

export interface LoadedConfig {
  readonly config: Config;
  readonly source: ConfigSource;
}

/**
 * Finds and validates the configuration: `explicitPath`, then `PETREL_CONFIG`, then the embedded
 * defaults. Throws ConfigError with one line naming the key and the problem.
 */
export function loadConfig(explicitPath: string | undefined, env: NodeJS.ProcessEnv): LoadedConfig {
  const path = explicitPath ?? (env['PETREL_CONFIG'] || undefined);
  if (path === undefined)
    return { config: parseConfig({}, 'embedded defaults'), source: { kind: 'defaults' } };
  const full = resolve(path);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (err) {
    throw new ConfigError('PETREL_CONFIG_UNREADABLE', `cannot read config ${full}: ${errorMessage(err)}`);
  }
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    const first = errorMessage(err).split('\n')[0] ?? 'syntax error';
    throw new ConfigError('PETREL_CONFIG_INVALID', `${full}: TOML syntax: ${first}`);
  }
  return { config: parseConfig(raw, full), source: { kind: 'file', path: full } };
}

/** Validates an already-parsed object (TOML tables) and deep-freezes the result. */
export function parseConfig(raw: unknown, origin: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `${origin}: ${describeIssue(result.error.issues[0])}`);
  }
  return deepFreeze(result.data);
}

/** Keys Petrel no longer reads, with what to write instead. */
const REPLACED_KEYS: Readonly<Record<string, string>> = {
  'http.metrics_token':
    'secrets are not written in the config: put the token in a file and set http.metrics_token_file',
};

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid configuration';
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
    const replaced = keys.find((k) => REPLACED_KEYS[k] !== undefined);
    if (replaced) return `${replaced}: ${REPLACED_KEYS[replaced]}`;
    return `${keys.join(', ')}: unknown key${keys.length > 1 ? 's' : ''}`;
  }
  return `${path || '(top level)'}: ${issue.message}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else {
      const key = String(part);
      const bare = /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
      out += out ? `.${bare}` : bare;
    }
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
