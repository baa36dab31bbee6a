import type { KeyCache, KeyReloadFailure } from './key-cache.js';
import { algorithmOf } from './keys.js';
import type { DkimKey } from './signer.js';

/** Where an active key's private half lives; from the spool's key table. */
export interface ActiveKeyRef {
  readonly domain: string;
  readonly selector: string;
  readonly privateKeyPath: string;
}

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

export function createKeyRing(loadActive: () => Promise<readonly ActiveKeyRef[]>, cache: KeyCache): KeyRing {
  let byDomain = new Map<string, DkimKey[]>();

  const refresh = async (): Promise<KeyReloadFailure[]> => {
    const next = new Map<string, DkimKey[]>();
    const failures: KeyReloadFailure[] = [];
    for (const ref of await loadActive()) {
      try {
        const privateKey = await cache.get(ref.privateKeyPath);
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
