import type { Config } from '../config/index.js';
import { createSigner, type DkimKey } from '../dkim/index.js';
import type { Logger } from '../logging/index.js';
import type { Clock, SharedCounters } from '../shared/index.js';
import { createSubmissionService, type BoundListener, type SubmissionService } from '../submission/index.js';
import type { Certificates } from './certificates.js';
import type { Part } from './part.js';
import type { Queue } from './queue.js';
import type { Storage } from './storage.js';

export interface SubmissionPartDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly storage: Storage;
  readonly queue: Queue;
  readonly certificates: Certificates;
  /** Sessions per client address, AUTH failures and account limits, counted for the whole node. */
  readonly counters: SharedCounters;
  /** Told the service once it runs: the HTTP API submits through it. */
  readonly onService?: (service: SubmissionService) => void;
}

/**
 * The submission listeners, with DKIM signing and List-Unsubscribe fields. Reloads the DKIM
 * policy and the unsubscribe links' base and lifetime (read per message) and the certificate;
 * `[submission]` itself needs a restart.
 */
export function createSubmission(config: Config, deps: SubmissionPartDeps): Part<BoundListener[]> {
  const { storage, queue, certificates, clock } = deps;
  let live = config;
  let service: SubmissionService | null = null;

  return {
    reloadable: ['dkim', 'http.public_url', 'http.unsubscribe_ttl'],
    async start() {
      const { spool, metrics, keys } = storage;
      const signer = createSigner({ clock });
      const sign = async (
        message: Buffer,
        fromDomain: string,
      ): Promise<{ header: Buffer; aligned: boolean } | null> => {
        const own = keys.keysFor(fromDomain);
        const extra: readonly DkimKey[] = live.dkim.also_sign_as ? keys.keysFor(live.dkim.also_sign_as) : [];
        // The platform signature alone is still better than none for a domain without a key.
        const all = [...own, ...extra.filter((k) => !own.some((o) => o.domain === k.domain))];
        return all.length === 0 ? null : { header: await signer.sign(message, all), aligned: own.length > 0 };
      };
      const unsubscribeHeaders = async (accountId: number, address: string): Promise<string[]> => {
        const token = await spool.suppressions.unsubscribeToken(
          accountId,
          address,
          live.http.unsubscribe_ttl,
        );
        const publicUrl = live.http.public_url.replace(/\/$/, '');
        return [
          `List-Unsubscribe: <${publicUrl}/u/${token}>,\r\n <mailto:unsub-${token}@${config.inbound.bounce_domain}?subject=unsubscribe>\r\n`,
          'List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n',
        ];
      };
      const s = createSubmissionService({
        config: config.submission,
        hostname: config.hostname,
        tls: certificates.current,
        spool,
        logger: deps.logger.child({ component: 'submission' }),
        clock,
        counters: deps.counters,
        onLimited: (account, reason) => metrics.accountLimitRefusals.inc({ account: account.name, reason }),
        onQueued: (listener, seconds) => {
          metrics.messagesReceived.inc({ listener });
          metrics.submissionSeconds.observe(seconds);
          queue.wake();
        },
        sign,
        requireSignature: () => live.dkim.require,
        unsubscribeHeaders,
        marketingPaused: (id) => storage.paused(id),
      });
      service = s;
      deps.onService?.(s);
      metrics.readAccountUsage(() => s.accountUsage());
      certificates.onChange((material) => s.updateTls(material));
      const bound = await s.start();
      for (const b of bound)
        deps.logger.info({ listener: b.name, address: `${b.host}:${b.port}` }, 'listening');
      return bound;
    },
    async reload(next) {
      live = next;
    },
    async close() {
      await service?.close();
    },
  };
}
