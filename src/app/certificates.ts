import type { Config } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import { loadTlsMaterial, type TlsMaterial } from '../tls/index.js';
import type { Part } from './part.js';

/** The TLS certificate the SMTP listeners present. */
export interface Certificates {
  readonly current: TlsMaterial;
  /** Called with each certificate a reload loads, for new TLS sessions. */
  onChange(listener: (material: TlsMaterial) => void): void;
}

export interface CertificatesDeps {
  readonly logger: Logger;
}

/**
 * The certificate of [tls], or a self-signed one in data_dir. A reload re-reads the files
 * whenever a certificate is configured (renewals keep their paths); one that does not load
 * leaves the one in use.
 */
export function createCertificates(config: Config, deps: CertificatesDeps): Part<Certificates> {
  const { logger } = deps;
  let applied = config.tls;
  let current: TlsMaterial | null = null;
  const listeners: ((material: TlsMaterial) => void)[] = [];

  return {
    reloadable: ['tls'],
    async start() {
      const first = await loadTlsMaterial(config.tls, config.data_dir, config.hostname);
      current = first;
      if (first.origin === 'self-signed')
        logger.warn('using a self-signed TLS certificate; set [tls] cert and key');
      return {
        get current() {
          return current!;
        },
        onChange: (listener) => void listeners.push(listener),
      };
    },
    async reload(next) {
      if (JSON.stringify(next.tls) === JSON.stringify(applied) && !next.tls.cert) return;
      let material: TlsMaterial;
      try {
        material = await loadTlsMaterial(next.tls, config.data_dir, config.hostname);
      } catch (err) {
        logger.error({ err }, 'TLS certificate reload failed; keeping the one in use');
        return;
      }
      applied = next.tls;
      current = material;
      for (const listener of listeners) listener(material);
    },
    async close() {
      listeners.length = 0;
    },
  };
}
