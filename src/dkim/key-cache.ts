import { readFile as fsReadFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { ConfigError, errorMessage } from '../shared/index.js';
import { parsePrivateKey } from './keys.js';

/** A key file that could not be re-read on reload; the previous key stays in use. */
export interface KeyReloadFailure {
  readonly path: string;
  readonly error: ConfigError;
}

/**
 * Private keys by PEM file path, parsed once. Parsing PEM costs about as much as an RSA
 * signature, so it must never happen per message.
 */
export interface KeyCache {
  /**
   * The key in the file at `path`, read and parsed on first use and cached from then on.
   * Concurrent first calls share one read. Rejects with ConfigError naming the path; a failed
   * load is not cached, so a fixed file is picked up by the next call.
   */
  get(path: string): Promise<KeyObject>;
  /**
   * Re-reads every cached file (SIGHUP). A file that fails keeps its previous key and is
   * reported, so a bad edit never stops signing.
   */
  reload(): Promise<readonly KeyReloadFailure[]>;
}

/** Reads a file; injectable for tests. */
export type ReadKeyFile = (path: string) => Promise<Buffer>;

/** Creates an empty {@link KeyCache}. */
export function createKeyCache(readFile: ReadKeyFile = (path) => fsReadFile(path)): KeyCache {
  const entries = new Map<string, Promise<KeyObject>>();

  const load = async (path: string): Promise<KeyObject> => {
    let pem: Buffer;
    try {
      pem = await readFile(path);
    } catch (err) {
      throw new ConfigError('PETREL_CONFIG_INVALID', `dkim key ${path}: cannot read: ${errorMessage(err)}`);
    }
    return parsePrivateKey(pem, `dkim key ${path}`);
  };

  return {
    get(path) {
      const cached = entries.get(path);
      if (cached) return cached;
      const pending = load(path);
      entries.set(path, pending);
      pending.catch(() => {
        if (entries.get(path) === pending) entries.delete(path);
      });
      return pending;
    },

    async reload() {
      const failures: KeyReloadFailure[] = [];
      await Promise.all(
        [...entries.keys()].map(async (path) => {
          try {
            const key = await load(path);
            entries.set(path, Promise.resolve(key));
          } catch (err) {
            failures.push({ path, error: err as ConfigError });
          }
        }),
      );
      return failures;
    },
  };
}
