import type { Config } from './config/index.js';
import type { Logger } from './logging/index.js';
import { openSpool, type Spool } from './spool/index.js';
import { createSubmissionService, type BoundListener, type SubmissionService } from './submission/index.js';
import { loadTlsMaterial } from './tls/index.js';
import { systemClock, type Clock } from './shared/index.js';

export interface AppDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Called when the storage fails so that further acceptance would be unsafe. */
  readonly onFatal?: (err: Error) => void;
}

/** A whole Petrel, without touching `process`: tests run it in-process, main.ts runs it for real. */
export interface App {
  /** Opens the spool, then binds listeners; on failure closes what started and rethrows. */
  start(): Promise<BoundListener[]>;
  /** Idempotent: stops listeners (open sessions finish or get 421), then closes the spool. */
  close(): Promise<void>;
  readonly spool: Spool | null;
}

export function createApp(config: Config, deps: AppDeps): App {
  const logger = deps.logger;
  const clock = deps.clock ?? systemClock;
  let spool: Spool | null = null;
  let submission: SubmissionService | null = null;
  let closing: Promise<void> | null = null;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      const results = await Promise.allSettled([submission?.close()]);
      // The spool closes last: a session finishing its DATA still needs it.
      results.push(...(await Promise.allSettled([spool?.close()])));
      for (const r of results) if (r.status === 'rejected') logger.error({ err: r.reason }, 'error while closing');
    })();
    return closing;
  };

  return {
    get spool() {
      return spool;
    },
    async start() {
      try {
        spool = openSpool(config.data_dir, {
          clock,
          onFatal: (err) => {
            logger.fatal({ err }, 'spool storage failed; refusing new mail');
            deps.onFatal?.(err);
          },
        });
        const tls = await loadTlsMaterial(config.tls, config.data_dir, config.hostname);
        if (tls.origin === 'self-signed') logger.warn('using a self-signed TLS certificate; set [tls] cert and key');
        submission = createSubmissionService({
          config: config.submission,
          hostname: config.hostname,
          tls,
          spool,
          logger: logger.child({ component: 'submission' }),
          clock,
        });
        const bound = await submission.start();
        for (const b of bound) logger.info({ listener: b.name, address: `${b.host}:${b.port}` }, 'listening');
        return bound;
      } catch (err) {
        await close();
        throw err;
      }
    },
    close,
  };
}
