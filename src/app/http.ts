import type { Config } from '../config/index.js';
import { createHttpService, type HttpService } from '../http/index.js';
import type { Logger } from '../logging/index.js';
import type { Part } from './part.js';
import type { Storage } from './storage.js';

export interface HttpPartDeps {
  readonly logger: Logger;
  readonly storage: Storage;
  /** Whether the mail listeners are up; /readyz also needs the database writable. */
  readonly listening: () => boolean;
}

/** The HTTP listener: metrics, health, readiness, one-click unsubscribe. Reloads the metrics token. */
export function createHttp(config: Config, deps: HttpPartDeps): Part {
  const { storage } = deps;
  const logger = deps.logger.child({ component: 'http' });
  let live = config;
  let service: HttpService | null = null;

  return {
    reloadable: ['http.metrics_token'],
    async start() {
      const { spool, metrics } = storage;
      service = createHttpService({
        listen: config.http.listen,
        spool,
        logger,
        metrics: () => metrics.render(),
        metricsToken: () => live.http.metrics_token,
        ready: async () => deps.listening() && (await spool.writable()),
        onUnsubscribe: () => metrics.unsubscribes.inc({ source: 'one-click' }),
      });
      const web = await service.start();
      deps.logger.info({ listener: 'http', address: `${web.host}:${web.port}` }, 'listening');
    },
    async reload(next) {
      live = next;
    },
    async close() {
      await service?.close();
    },
  };
}
