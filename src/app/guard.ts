import type { Config } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import type { Clock } from '../shared/index.js';
import type { Part } from './part.js';
import type { Storage } from './storage.js';

export interface GuardDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly storage: Storage;
}

/**
 * The complaint- and bounce-rate guard: an account whose recent deliveries drew too many
 * complaints or hard bounces has its marketing mail paused before the receivers block everyone
 * (new marketing mail gets 451 4.7.1, queued marketing mail stays queued, transactional mail
 * flows) until `petrel user resume`. One node checks at a time (the spool's claim).
 */
export function createGuard(config: Config, deps: GuardDeps): Part {
  const logger = deps.logger.child({ component: 'guard' });
  const { clock, storage } = deps;
  let settings = config.guard;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;

  const check = async (): Promise<void> => {
    const { spool, metrics } = storage;
    if (!(await spool.claim('guard'))) return;
    const s = settings;
    const since = clock.now() - s.window_time;
    const paused = new Set((await spool.guard.pauses()).map((p) => p.accountId));
    for (const accountId of await spool.guard.activeAccounts(since)) {
      if (paused.has(accountId)) continue;
      const h = await spool.guard.health(accountId, since, s.window);
      if (h.delivered < s.min_deliveries) continue;
      const complaintRate = h.complaints / h.delivered;
      const bounceRate = h.hardBounces / h.delivered;
      const why =
        s.complaint_rate > 0 && complaintRate > s.complaint_rate
          ? { key: 'complaint_rate', text: `complaint rate ${(complaintRate * 100).toFixed(2)}%` }
          : s.hard_bounce_rate > 0 && bounceRate > s.hard_bounce_rate
            ? { key: 'hard_bounce_rate', text: `hard-bounce rate ${(bounceRate * 100).toFixed(2)}%` }
            : null;
      if (!why) continue;
      const reason = `${why.text} over ${h.delivered} deliveries`;
      if (!(await spool.guard.pause(accountId, reason))) continue;
      const account = (await spool.accounts.list()).find((a) => a.id === accountId);
      const name = account?.name ?? String(accountId);
      metrics.accountPauses.inc({ account: name, reason: why.key });
      await spool.events.record({
        type: 'paused',
        msgId: null,
        recipientId: null,
        accountId,
        domain: null,
        details: {
          account: name,
          stream: 'marketing',
          reason: why.key,
          delivered: h.delivered,
          complaints: h.complaints,
          hardBounces: h.hardBounces,
          since: new Date(h.from).toISOString(),
        },
      });
      logger.warn(
        {
          event: 'paused',
          account: name,
          reason: why.key,
          delivered: h.delivered,
          complaints: h.complaints,
          hardBounces: h.hardBounces,
        },
        `marketing mail of ${name} paused: ${reason}; petrel user resume ${name} lifts it`,
      );
      await storage.refresh();
    }
  };

  const schedule = (): void => {
    timer = setTimeout(() => {
      running = check()
        .catch((err: unknown) => logger.error({ err }, 'guard check failed'))
        .finally(() => {
          running = null;
          if (timer) schedule();
        });
    }, settings.interval);
    timer.unref();
  };

  return {
    reloadable: ['guard'],
    async start() {
      schedule();
    },
    async reload(next) {
      settings = next.guard;
    },
    async close() {
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
    },
  };
}
