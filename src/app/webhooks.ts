import type { Config } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import type { Clock } from '../shared/index.js';
import {
  createWebhookDispatcher,
  loadWebhookTargets,
  type WebhookDispatcher,
  type WebhookTarget,
} from '../webhooks/index.js';
import type { Part } from './part.js';
import type { Storage } from './storage.js';

export interface WebhooksDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly storage: Storage;
}

/**
 * The webhook dispatcher. A reload that changes the receivers, or a secret in their files,
 * replaces it; each receiver's cursor is in the database, so the new one goes on where the old
 * one stopped (a batch in flight at that moment is sent again) and a new receiver starts at the
 * present.
 */
export function createWebhooks(config: Config, deps: WebhooksDeps): Part {
  const logger = deps.logger.child({ component: 'webhooks' });
  let targets: readonly WebhookTarget[] = [];
  let dispatcher: WebhookDispatcher | null = null;
  let closed = false;
  let replacing: Promise<void> = Promise.resolve();

  const run = async (next: readonly WebhookTarget[]): Promise<void> => {
    targets = next;
    dispatcher = createWebhookDispatcher({
      events: deps.storage.spool.events,
      claim: (job) => deps.storage.spool.claim(job),
      targets: next,
      logger,
      clock: deps.clock,
    });
    await dispatcher.start();
  };

  return {
    reloadable: ['webhooks'],
    start: () => run(loadWebhookTargets(config.webhooks)),
    async reload(next) {
      let loaded: WebhookTarget[];
      try {
        loaded = loadWebhookTargets(next.webhooks);
      } catch (err) {
        logger.error({ err }, 'webhook reload refused; keeping the receivers in use');
        return;
      }
      if (JSON.stringify(loaded) === JSON.stringify(targets)) return;
      replacing = replacing.then(async () => {
        if (closed) return;
        await dispatcher?.stop();
        if (!closed) await run(loaded);
      });
      await replacing;
    },
    async close() {
      closed = true;
      await replacing;
      await dispatcher?.stop();
    },
  };
}
