import type { KeyObject } from 'node:crypto';
import { ConfigError } from '../shared/index.js';
import type { KeyCache, KeyReloadFailure } from './key-cache.js';
import { algorithmOf, parsePrivateKey } from './keys.js';
import type { DkimKey } from './signer.js';

/** Where an active key's private half lives; from the spool's key table. */
export interface ActiveKeyRef {
  readonly domain: string;
  readonly selector: string;
  readonly privateKeyPath: string;
  /** Set when the key is kept sealed in the spool instead of in its file. */
  readonly sealedKey?: Buffer | null;
}

/** Opens a sealed key (see seal.ts); absent when this node has no spool key. */
export type Unseal = (sealed: Buffer, what: string) => Buffer;

/**
 * The active signing keys by domain, with parsed KeyObjects, rebuilt when the key table
 * changes. Lookups are synchronous map reads on the hot path.
 */
export interface KeyRing {
  /** Keys of `domain` or of its nearest parent that has any (relaxed alignment). */
  keysFor(domain: string): readonly DkimKey[];
  /** Re-reads the key table; files already parsed are not parsed again. */
  refresh(): Promise<readonly KeyReloadFailure[]>;
  /** Re-reads the key table and every key file (SIGHUP). */
  reload(): Promise<readonly KeyReloadFailure[]>;
  /** The keys in use, as `domain/selector/algorithm` (for logs: no secrets). */
  loaded(): string[];
}

export function createKeyRing(
  loadActive: () => Promise<readonly ActiveKeyRef[]>,
  cache: KeyCache,
  unseal?: Unseal,
): KeyRing {
  let byDomain = new Map<string, DkimKey[]>();
  // Sealed keys by their ciphertext, opened and parsed once (a new key is a new ciphertext).
  let sealed = new Map<string, KeyObject>();

  const privateKeyOf = async (ref: ActiveKeyRef, seen: Map<string, KeyObject>): Promise<KeyObject> => {
    if (!ref.sealedKey) return cache.get(ref.privateKeyPath);
    const id = ref.sealedKey.toString('base64');
    const what = `dkim key ${ref.domain}/${ref.selector}`;
    let key = sealed.get(id);
    if (!key) {
      if (!unseal)
        throw new ConfigError(
          'PETREL_CONFIG_INVALID',
          `${what}: kept sealed in the spool; set [spool] key_file (or PETREL_SPOOL_KEY) to sign with it`,
        );
      key = parsePrivateKey(unseal(ref.sealedKey, what), what);
    }
    seen.set(id, key);
    return key;
  };

  const refresh = async (): Promise<KeyReloadFailure[]> => {
    const next = new Map<string, DkimKey[]>();
    const failures: KeyReloadFailure[] = [];
    const seen = new Map<string, KeyObject>();
    for (const ref of await loadActive()) {
      try {
        const privateKey = await privateKeyOf(ref, seen);
        const key: DkimKey = {
          domain: ref.domain,
          selector: ref.selector,
          algorithm: algorithmOf(privateKey),
          privateKey,
        };
        const list = next.get(ref.domain) ?? [];
        // RSA first: receivers that do not know Ed25519 stop at the first signature they can check.
        list.push(key);
        list.sort((a, b) => (a.algorithm === b.algorithm ? 0 : a.algorithm === 'rsa-sha256' ? -1 : 1));
        next.set(ref.domain, list);
      } catch (err) {
        failures.push({ path: ref.privateKeyPath, error: err as KeyReloadFailure['error'] });
      }
    }
    byDomain = next;
    sealed = seen;
    return failures;
  };

  return {
    keysFor(domain) {
      for (let d = domain; d.includes('.'); d = d.slice(d.indexOf('.') + 1)) {
        const keys = byDomain.get(d);
        if (keys) return keys;
      }
      return [];
    },
    refresh,
    loaded() {
      return [...byDomain.values()].flat().map((k) => `${k.domain}/${k.selector}/${k.algorithm}`);
    },
    async reload() {
      const failures = [...(await cache.reload())];
      return [...failures, ...(await refresh())];
    },
  };
}
