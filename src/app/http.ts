import { readMetricsToken, type Config } from '../config/index.js';
import { createApi } from '../api/index.js';
import { VERSION } from '../version.js';
import { createHttpService, type HttpService } from '../http/index.js';
import { smtpError, type Clock, type SharedCounters } from '../shared/index.js';
import type { DirectResult, DirectSubmission } from '../submission/index.js';
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
  readonly clock: Clock;
  /** Failed API authentications per address, counted for the whole node as SMTP AUTH's are. */
  readonly counters: SharedCounters;
  /** The submission service's door for whole messages; null until it runs. */
  readonly submit: () => ((input: DirectSubmission) => Promise<DirectResult>) | null;
}

/**
 * The HTTP listener: metrics, health, readiness, one-click unsubscribe. A reload re-reads the
 * metrics token file; one that cannot be read leaves the token in use.
 */
export function createHttp(config: Config, deps: HttpPartDeps): Part {
  const { storage } = deps;
  const logger = deps.logger.child({ component: 'http' });
  let token = '';
  let live = config;
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
        api: createApi({
          spool,
          keys: spool.keys,
          counters: deps.counters,
          clock: deps.clock,
          logger: logger.child({ component: 'api' }),
          submit: (input) => {
            const submit = deps.submit();
            return submit
              ? submit(input)
              : Promise.reject(smtpError(451, '4.3.0', 'Submission is not running yet, try again later'));
          },
          maxMessageSize: () => live.submission.max_message_size,
          version: VERSION,
        }),
      });
      const web = await service.start();
      deps.logger.info({ listener: 'http', address: `${web.host}:${web.port}` }, 'listening');
    },
    async reload(next) {
      live = next;
      token = readMetricsToken(next.http);
    },
    async close() {
      await service?.close();
    },
  };
}
