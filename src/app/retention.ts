import type { Config } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import { startRetention } from '../privacy/index.js';
import type { Part } from './part.js';
import type { Storage } from './storage.js';

export interface RetentionDeps {
  readonly logger: Logger;
  readonly storage: Storage;
}

/** The retention sweep. A reload that changes `[retention]` restarts it with the new settings. */
export function createRetention(config: Config, deps: RetentionDeps): Part {
  const logger = deps.logger.child({ component: 'retention' });
  let applied = config.retention;
  let stop: (() => void) | null = null;

  const run = (settings: Config['retention']): void => {
    stop?.();
    applied = settings;
    const { spool, metrics } = deps.storage;
    stop = startRetention(spool, settings, logger, (c) => {
      metrics.retentionDeleted.inc({ kind: 'bodies' }, c.bodies);
      metrics.retentionDeleted.inc({ kind: 'messages' }, c.messages);
      metrics.retentionDeleted.inc({ kind: 'events' }, c.events);
      metrics.retentionDeleted.inc({ kind: 'bounces' }, c.bounces);
    });
  };

  return {
    reloadable: ['retention'],
    async start() {
      run(config.retention);
    },
    async reload(next) {
      if (JSON.stringify(next.retention) === JSON.stringify(applied)) return;
      run(next.retention);
      logger.info({ ...next.retention }, 'retention sweep restarted with new settings');
    },
    async close() {
      stop?.();
    },
  };
}
