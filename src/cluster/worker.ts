import cluster from 'node:cluster';
import type { Throttle } from '../queue/index.js';
import type { SharedCounters } from '../shared/index.js';
import type { PrimaryMessage, WorkerMessage } from './messages.js';

/** A worker's side of the channel to its primary. */
export interface PrimaryLink {
  /**
   * Limits shared with every worker of the node, kept by the primary: delivery connection slots
   * and send bookings, the listeners' per-IP sessions and AUTH failures, and the accounts' rates
   * and daily quotas.
   */
  readonly throttle: Throttle & SharedCounters;
  /** The node's metrics: every live worker's, summed by the primary. */
  nodeMetrics(): Promise<{ contentType: string; body: string }>;
  /** Tells the primary this worker is serving. */
  ready(): void;
  /** What this worker answers when the primary collects metrics. */
  onCollect(snapshot: () => Promise<unknown>): void;
  /** Called when the primary asks for a reload. */
  onReload(handler: () => void): void;
  /** Called once when the channel closes: the primary is gone, and this worker must be too. */
  onPrimaryGone(handler: () => void): void;
}

const SCRAPE_TIMEOUT_MS = 10_000;

/** `fn`, run on the first call only. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

/** Opens the link; only in a worker process started by the primary (cluster.isWorker). */
export function linkToPrimary(): PrimaryLink {
  const self = cluster.worker;
  if (!self) throw new Error('linkToPrimary: not a cluster worker');
  let seq = 0;
  const granted = new Map<number, { key: string; resolve: (release: (() => void) | null) => void }>();
  const aborted = new Map<number, string>();
  const reserved = new Map<number, (at: number) => void>();
  const took = new Map<number, (ok: boolean) => void>();
  const counted = new Map<number, (count: number) => void>();
  const consumed = new Map<number, (count: number | null) => void>();
  const scrapes = new Map<number, (r: { contentType: string; body: string }) => void>();
  let snapshot: (() => Promise<unknown>) | null = null;
  let reload: (() => void) | null = null;

  const send = (m: WorkerMessage): void => {
    // A closed channel means the primary is gone; onPrimaryGone ends this worker.
    if (self.isConnected()) self.send(m);
  };

  const releaser = (key: string): (() => void) => once(() => send({ t: 'release', key }));

  self.on('message', (m: PrimaryMessage) => {
    switch (m.t) {
      case 'granted': {
        const w = granted.get(m.id);
        if (w) {
          granted.delete(m.id);
          w.resolve(releaser(w.key));
          return;
        }
        // Stopped while the grant was on its way: give it straight back.
        const key = aborted.get(m.id);
        aborted.delete(m.id);
        if (key !== undefined) send({ t: 'release', key });
        return;
      }
      case 'reserved':
        reserved.get(m.id)?.(m.at);
        reserved.delete(m.id);
        return;
      case 'took':
        took.get(m.id)?.(m.ok);
        took.delete(m.id);
        return;
      case 'counted':
        counted.get(m.id)?.(m.count);
        counted.delete(m.id);
        return;
      case 'consumed':
        consumed.get(m.id)?.(m.count);
        consumed.delete(m.id);
        return;
      case 'scraped':
        scrapes.get(m.id)?.({ contentType: m.contentType, body: m.body });
        scrapes.delete(m.id);
        return;
      case 'collect':
        void (snapshot ? snapshot() : Promise.resolve([])).then(
          (metrics) => send({ t: 'collected', id: m.id, metrics }),
          () => send({ t: 'collected', id: m.id, metrics: [] }),
        );
        return;
      case 'reload':
        reload?.();
        return;
    }
  });

  return {
    throttle: {
      acquire(key, max, signal) {
        if (signal.aborted) return Promise.resolve(null);
        const id = ++seq;
        return new Promise((resolve) => {
          const onAbort = (): void => {
            if (!granted.delete(id)) return;
            aborted.set(id, key);
            send({ t: 'cancel', id });
            resolve(null);
          };
          granted.set(id, {
            key,
            resolve: (release) => {
              signal.removeEventListener('abort', onAbort);
              resolve(release);
            },
          });
          signal.addEventListener('abort', onAbort, { once: true });
          send({ t: 'acquire', id, key, max });
        });
      },
      reserve(key, rate) {
        const id = ++seq;
        return new Promise((resolve) => {
          reserved.set(id, resolve);
          send({ t: 'reserve', id, key, rate });
        });
      },
      tryTake(key, max) {
        const id = ++seq;
        return new Promise((resolve) => {
          took.set(id, (ok) => resolve(ok ? once(() => send({ t: 'give', key })) : null));
          send({ t: 'take', id, key, max });
        });
      },
      hit(key, windowMs) {
        const id = ++seq;
        return new Promise((resolve) => {
          counted.set(id, resolve);
          send({ t: 'hit', id, key, windowMs });
        });
      },
      consume(key, max, windowMs) {
        const id = ++seq;
        return new Promise((resolve) => {
          consumed.set(id, resolve);
          send({ t: 'consume', id, key, max, windowMs });
        });
      },
      raise(key, floor, windowMs) {
        const id = ++seq;
        return new Promise((resolve) => {
          counted.set(id, resolve);
          send({ t: 'raise', id, key, floor, windowMs });
        });
      },
      count(key) {
        const id = ++seq;
        return new Promise((resolve) => {
          counted.set(id, resolve);
          send({ t: 'count', id, key });
        });
      },
      reset(key) {
        // The channel keeps order: whatever this worker asks next sees the count cleared.
        send({ t: 'reset', key });
        return Promise.resolve();
      },
    },
    nodeMetrics() {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          scrapes.delete(id);
          reject(new Error('the primary did not answer the scrape'));
        }, SCRAPE_TIMEOUT_MS);
        scrapes.set(id, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
        send({ t: 'scrape', id });
      });
    },
    ready: () => send({ t: 'ready' }),
    onCollect(fn) {
      snapshot = fn;
    },
    onReload(fn) {
      reload = fn;
    },
    onPrimaryGone(fn) {
      // The channel may have closed before this worker got here (its primary died while it
      // was still loading): then now, not never.
      if (!self.isConnected()) fn();
      else self.once('disconnect', fn);
    },
  };
}
