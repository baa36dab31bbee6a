import type { Config } from '../config/index.js';
import { createKeyCache, createKeyRing, type KeyRing } from '../dkim/index.js';
import type { Logger } from '../logging/index.js';
import { createMetrics, type Metrics } from '../metrics/index.js';
import type { Clock } from '../shared/index.js';
import { openSpool, type Spool } from '../spool/index.js';
import { createVerp, type Verp } from '../verp/index.js';
import type { Part } from './part.js';

/** What the other parts use of the storage: the database and what is derived from it. */
export interface Storage {
  readonly spool: Spool;
  readonly metrics: Metrics;
  /** Return paths signed with the database's secret. */
  readonly verp: Verp;
  /** DKIM keys named in the database, loaded and cached. */
  readonly keys: KeyRing;
  /** Another connection (the CLI) committed: re-reads what is cached from the database. */
  refresh(): Promise<void>;
}

export interface StorageDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly onFatal?: (err: Error) => void;
}

/**
 * The spool and what lives in it: metrics over it, VERP, DKIM keys, the erasure count. Nothing
 * in the configuration it uses reloads; SIGHUP re-reads the DKIM key files.
 */
export function createStorage(config: Config, deps: StorageDeps): Part<Storage> {
  const { logger, clock } = deps;
  let spool: Spool | null = null;
  let keys: KeyRing | null = null;

  return {
    reloadable: [],
    async start() {
      const store = openSpool(config.data_dir, {
        clock,
        writerThread: true,
        onFatal: (err) => {
          logger.fatal({ err }, 'spool storage failed; refusing new mail');
          deps.onFatal?.(err);
        },
      });
      spool = store;
      const metrics = createMetrics({
        queueDepth: async () => {
          const now = clock.now();
          return (await store.queue.stats()).map((d) => ({
            domain: d.domain,
            recipients: d.queued + d.inflight,
            oldestSeconds: Math.max(0, (now - d.oldestReceivedAt) / 1000),
          }));
        },
        spoolBytes: () => store.fileBytes(),
      });
      const verp = createVerp({
        secret: store.secret,
        bounceDomain: config.inbound.bounce_domain,
        clock,
        maxAgeMs: config.inbound.verp_max_age,
      });
      const ring = createKeyRing(() => store.dkimKeys.active(), createKeyCache());
      keys = ring;
      for (const f of await ring.refresh())
        logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
      let erasures = await store.privacy.erasures();
      metrics.privacyErasures.inc(erasures);
      return {
        spool: store,
        metrics,
        verp,
        keys: ring,
        async refresh() {
          for (const f of await ring.refresh())
            logger.error({ path: f.path, err: f.error }, 'cannot load DKIM key');
          logger.debug({ keys: ring.loaded() }, 'DKIM keys refreshed');
          // Erasures run in the CLI; the counter counts them here.
          const total = await store.privacy.erasures();
          if (total > erasures) metrics.privacyErasures.inc(total - erasures);
          erasures = total;
        },
      };
    },
    async reload() {
      if (!keys) return;
      for (const f of await keys.reload())
        logger.error({ path: f.path, err: f.error }, 'cannot reload DKIM key');
      logger.info('reloaded DKIM keys');
    },
    async close() {
      await spool?.close();
    },
  };
}
