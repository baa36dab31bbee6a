import type { Logger } from '../logging/index.js';
import { errorMessage, systemClock, type Clock } from '../shared/index.js';
import type { EventStore } from '../spool/index.js';
import { VERSION } from '../version.js';
import {
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  signBody,
  toWebhookEvent,
  urlKey,
  type WebhookEvent,
  type WebhookEventType,
} from './payload.js';

/** One receiver, its secret already read. */
export interface WebhookTarget {
  readonly url: string;
  readonly secret: string;
  readonly batchSize: number;
  readonly events: readonly WebhookEventType[];
  readonly timeoutMs: number;
  readonly maxBackoffMs: number;
  readonly pollIntervalMs: number;
}

export interface WebhookDeps {
  readonly events: EventStore;
  readonly targets: readonly WebhookTarget[];
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Injected for unit tests; default: the global fetch. */
  readonly fetch?: typeof fetch;
  /** First retry delay; doubles per failure up to the target's maxBackoffMs. */
  readonly minBackoffMs?: number;
  /**
   * Whether this process may dispatch to the receiver whose cursor key is `job` now (one
   * dispatcher per receiver across a cluster); default: always.
   */
  readonly claim?: (job: string) => Promise<boolean>;
  /** Metrics hook: one call per POST. */
  readonly onRequest?: (ok: boolean, events: number) => void;
}

export interface WebhookDispatcher {
  /** Reads (or creates) each receiver's cursor and starts its loop. */
  start(): Promise<void>;
  /** Looks for new events now instead of at the next poll. */
  wake(): void;
  /** Aborts a POST in flight (its events are sent again later) and waits for the loops to end. */
  stop(): Promise<void>;
}

/** How far one scan reads past events receivers do not get (receptions), looking for a batch. */
const SCAN_FACTOR = 10;

/** Where the log shows a receiver: no query string, which may carry a token. */
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/**
 * Delivers the delivery log to webhook receivers. The events table is the outbox and each
 * receiver's cursor (the last event id it acknowledged with a 2xx) is stored in the database,
 * so events produced while a receiver is down, or while Petrel is stopped, are sent once it is
 * back. One batch is in flight per receiver and the cursor moves only past an acknowledged
 * batch, so a receiver gets events in id order, each once, except that a batch whose 2xx
 * arrived just as Petrel crashed is sent again: receivers dedupe on the event id.
 */
export function createWebhookDispatcher(deps: WebhookDeps): WebhookDispatcher {
  const clock = deps.clock ?? systemClock;
  const doFetch = deps.fetch ?? fetch;
  const minBackoff = deps.minBackoffMs ?? 1000;
  let stopping = false;
  const loops: Promise<void>[] = [];
  const waiters = new Set<{ readonly wakeable: boolean; readonly done: () => void }>();
  const aborts = new Set<AbortController>();

  /** Resolves after `ms`, or sooner on stop() (and on wake() when `wakeable`). */
  const sleep = (ms: number, wakeable: boolean): Promise<void> =>
    new Promise((resolve) => {
      if (stopping) return resolve();
      const waiter = {
        wakeable,
        done: (): void => {
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, ms);
      waiters.add(waiter);
    });

  const post = async (
    target: WebhookTarget,
    batch: readonly WebhookEvent[],
  ): Promise<{ ok: boolean; why: string }> => {
    const body = JSON.stringify({ events: batch });
    const timestamp = Math.floor(clock.now() / 1000);
    const controller = new AbortController();
    aborts.add(controller);
    const timer = setTimeout(
      () => controller.abort(new Error(`no answer within ${target.timeoutMs} ms`)),
      target.timeoutMs,
    );
    try {
      const res = await doFetch(target.url, {
        method: 'POST',
        body,
        redirect: 'manual',
        signal: controller.signal,
        headers: {
          'content-type': 'application/json',
          'user-agent': `Petrel/${VERSION}`,
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: signBody(target.secret, timestamp, body),
        },
      });
      // The answer's body is not needed; reading it frees the connection for the next batch.
      await res.arrayBuffer().catch(() => undefined);
      return { ok: res.status >= 200 && res.status < 300, why: `HTTP ${res.status}` };
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      return { ok: false, why: errorMessage(cause ?? err) };
    } finally {
      clearTimeout(timer);
      aborts.delete(controller);
    }
  };

  const run = async (target: WebhookTarget, startAt: number): Promise<void> => {
    const key = urlKey(target.url);
    const wanted = new Set<string>(target.events);
    const log = deps.logger.child({ webhook: shownUrl(target.url) });
    let cursor = startAt;
    let failures = 0;
    let mine = deps.claim === undefined;
    while (!stopping) {
      if (deps.claim) {
        let now: boolean;
        try {
          now = await deps.claim(`webhook:${key}`);
        } catch {
          now = false;
        }
        if (!now) {
          mine = false;
          await sleep(target.pollIntervalMs, false);
          continue;
        }
        if (!mine) {
          // Another node may have moved the cursor on while it dispatched: go on from there.
          try {
            cursor = (await deps.events.cursor(key)) ?? cursor;
          } catch (err) {
            log.error({ err }, 'cannot read a webhook cursor');
            await sleep(target.pollIntervalMs, false);
            continue;
          }
          mine = true;
          log.info({ fromEventId: cursor }, 'dispatching to this webhook receiver from this node');
        }
      }
      const batch: WebhookEvent[] = [];
      let upTo = cursor;
      try {
        // Gather up to batchSize wanted events, reading past the ones receivers do not get.
        const scanLimit = target.batchSize * SCAN_FACTOR;
        let scanned = 0;
        while (batch.length < target.batchSize && scanned < scanLimit) {
          const rows = await deps.events.after(upTo, Math.min(target.batchSize, scanLimit - scanned));
          if (rows.length === 0) break;
          scanned += rows.length;
          for (const row of rows) {
            const e = toWebhookEvent(row);
            if (e && wanted.has(e.type)) {
              if (batch.length === target.batchSize) break;
              batch.push(e);
            }
            upTo = row.id;
          }
        }
        if (batch.length === 0 && upTo > cursor) {
          await deps.events.setCursor(key, upTo);
          cursor = upTo;
          continue;
        }
      } catch (err) {
        log.error({ err }, 'cannot read the delivery log for a webhook');
        await sleep(target.pollIntervalMs, false);
        continue;
      }
      if (batch.length === 0) {
        await sleep(target.pollIntervalMs, true);
        continue;
      }
      const result = await post(target, batch);
      deps.onRequest?.(result.ok, batch.length);
      if (stopping && !result.ok) break;
      if (result.ok) {
        try {
          await deps.events.setCursor(key, upTo);
        } catch (err) {
          // The batch will be sent again: at least once beats losing it.
          log.error({ err }, 'cannot record a webhook cursor');
        }
        cursor = upTo;
        if (failures > 0) log.info({ failures, events: batch.length }, 'webhook receiver is back');
        log.debug(
          { events: batch.length, firstId: batch[0]!.id, lastId: batch[batch.length - 1]!.id },
          'webhook batch delivered',
        );
        failures = 0;
        continue;
      }
      failures += 1;
      const base = Math.min(target.maxBackoffMs, minBackoff * 2 ** Math.min(failures - 1, 30));
      // Jitter (±20%) keeps many Petrels from retrying in step against one receiver.
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      log.warn(
        { attempt: failures, reason: result.why, retryInMs: delay, events: batch.length },
        'webhook delivery failed',
      );
      await sleep(delay, false);
    }
  };

  return {
    async start() {
      for (const target of deps.targets) {
        const key = urlKey(target.url);
        let cursor = await deps.events.cursor(key);
        if (cursor === null) {
          // A new receiver starts at the present, not with the whole history of the log.
          cursor = await deps.events.latestId();
          await deps.events.setCursor(key, cursor);
          deps.logger.info(
            { webhook: shownUrl(target.url), fromEventId: cursor },
            'new webhook receiver starts after the latest event',
          );
        }
        loops.push(run(target, cursor));
      }
    },
    wake() {
      for (const w of [...waiters]) if (w.wakeable) w.done();
    },
    async stop() {
      stopping = true;
      for (const a of aborts) a.abort(new Error('shutting down'));
      for (const w of [...waiters]) w.done();
      await Promise.allSettled(loops);
    },
  };
}
