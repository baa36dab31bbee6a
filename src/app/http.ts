import { readMetricsToken, type Config } from '../config/index.js';
import { createHttpService, type HttpService } from '../http/index.js';
import type { Logger } from '../logging/index.js';
import type { Part } from './part.js';
import type { Storage } from './storage.js';

export interface HttpPartDeps {
  readonly logger: Logger;
  readonly storage: Storage;
  /** Whether the mail listeners are up; /readyz also needs the database writable. */
  readonly listening: () => boolean;
  /** What /metrics serves; default: this process's own metrics. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
}

/**
 * The HTTP listener: metrics, health, readiness, one-click unsubscribe. A reload re-reads the
 * metrics token file; one that cannot be read leaves the token in use.
 */
export function createHttp(config: Config, deps: HttpPartDeps): Part {
  const { storage } = deps;
  const logger = deps.logger.child({ component: 'http' });
  let token = '';
  let service: HttpService | null = null;

  return {
    reloadable: ['http.metrics_token_file'],
    async start() {
      token = readMetricsToken(config.http);
      const { spool, metrics } = storage;
      service = createHttpService({
        listen: config.http.listen,
        spool,
        logger,
        metrics: deps.metrics ?? (() => metrics.render()),
        metricsToken: () => token,
        ready: async () => deps.listening() && (await storage.ready()),
        onUnsubscribe: () => metrics.unsubscribes.inc({ source: 'one-click' }),
      });
      const web = await service.start();
      deps.logger.info({ listener: 'http', address: `${web.host}:${web.port}` }, 'listening');
    },
    async reload(next) {
      token = readMetricsToken(next.http);
    },
    async close() {
      await service?.close();
    },
  };
}
