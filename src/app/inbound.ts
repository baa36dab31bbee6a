import type { Config } from '../config/index.js';
import { createInboundService, type InboundService } from '../inbound/index.js';
import type { Logger } from '../logging/index.js';
import type { Clock, SharedCounters } from '../shared/index.js';
import type { Certificates } from './certificates.js';
import type { Part } from './part.js';
import type { Storage } from './storage.js';

export interface InboundPartDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly storage: Storage;
  readonly certificates: Certificates;
  /** Sessions per client address and AUTH failures, counted for the whole node. */
  readonly counters: SharedCounters;
}

/**
 * The listener for bounces, feedback reports and unsubscribe mail. Reloads the soft-bounce
 * thresholds (read at each report) and the certificate; `[inbound]` itself needs a restart.
 */
export function createInbound(config: Config, deps: InboundPartDeps): Part {
  const { storage, certificates, clock } = deps;
  let live = config;
  let service: InboundService | null = null;

  return {
    reloadable: ['suppression'],
    async start() {
      const { spool, verp, metrics } = storage;
      const s = createInboundService({
        settings: {
          listen: config.inbound.listen,
          bounceDomain: config.inbound.bounce_domain,
          fblAddress: config.inbound.fbl_address,
          maxMessageSize: config.inbound.max_message_size,
          maxConnections: config.inbound.max_connections,
          maxConnectionsPerIp: config.inbound.max_connections_per_ip,
          idleTimeoutMs: config.inbound.idle_timeout,
          dataTimeoutMs: config.inbound.data_timeout,
          greetingPauseMs: config.inbound.greeting_pause,
        },
        hostname: config.hostname,
        tls: certificates.current,
        spool,
        verp,
        logger: deps.logger.child({ component: 'inbound' }),
        counters: deps.counters,
        suppression: () => live.suppression,
        now: () => clock.now(),
        onReport: (category, reason) => {
          if (category === 'unsubscribe') metrics.unsubscribes.inc({ source: 'mailto' });
          else metrics.bounces.inc({ category, reason });
        },
      });
      service = s;
      certificates.onChange((material) => s.updateTls(material));
      for (const b of await s.start())
        deps.logger.info({ listener: 'inbound', address: `${b.host}:${b.port}` }, 'listening');
    },
    async reload(next) {
      live = next;
    },
    async close() {
      await service?.close();
    },
  };
}
