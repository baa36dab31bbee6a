/**
 * What a node's primary and its workers say to each other over the cluster IPC channel. Every
 * request carries an id the answer repeats; a worker that dies takes its requests with it.
 */
export type WorkerMessage =
  /** The worker's app has started: its listeners are up and it delivers. */
  | { readonly t: 'ready' }
  /** Wants one of `max` connection slots of `key`. */
  | { readonly t: 'acquire'; readonly id: number; readonly key: string; readonly max: number }
  /** No longer wants the slot asked for by `id` (its session was stopped). */
  | { readonly t: 'cancel'; readonly id: number }
  /** Gives back one slot of `key`. */
  | { readonly t: 'release'; readonly key: string }
  /** Books the next send of `key` at `rate` per second. */
  | { readonly t: 'reserve'; readonly id: number; readonly key: string; readonly rate: number }
  /** Wants one of `max` slots of the counter `key` now; answered by `took`, never queued. */
  | { readonly t: 'take'; readonly id: number; readonly key: string; readonly max: number }
  /** Gives back one slot of the counter `key`. */
  | { readonly t: 'give'; readonly key: string }
  /** Counts one event of `key` in a window of `windowMs`; answered by `counted`. */
  | { readonly t: 'hit'; readonly id: number; readonly key: string; readonly windowMs: number }
  /** Counts one event of `key` if its window holds fewer than `max`; answered by `consumed`. */
  | {
      readonly t: 'consume';
      readonly id: number;
      readonly key: string;
      readonly max: number;
      readonly windowMs: number;
    }
  /** Lifts the count of `key` to at least `floor`; answered by `counted`. */
  | {
      readonly t: 'raise';
      readonly id: number;
      readonly key: string;
      readonly floor: number;
      readonly windowMs: number;
    }
  /** Wants the count of `key` in its open window; answered by `counted`. */
  | { readonly t: 'count'; readonly id: number; readonly key: string }
  /** Clears the count of `key`. */
  | { readonly t: 'reset'; readonly key: string }
  /** Wants the node's metrics (a scrape came to this worker). */
  | { readonly t: 'scrape'; readonly id: number }
  /** This worker's own metrics, asked for by a `collect`. */
  | { readonly t: 'collected'; readonly id: number; readonly metrics: unknown };

export type PrimaryMessage =
  | { readonly t: 'granted'; readonly id: number }
  | { readonly t: 'reserved'; readonly id: number; readonly at: number }
  | { readonly t: 'took'; readonly id: number; readonly ok: boolean }
  | { readonly t: 'counted'; readonly id: number; readonly count: number }
  /** `count` null: the window was full and nothing was counted. */
  | { readonly t: 'consumed'; readonly id: number; readonly count: number | null }
  | {
      readonly t: 'scraped';
      readonly id: number;
      readonly contentType: string;
      readonly body: string;
    }
  | { readonly t: 'collect'; readonly id: number }
  /** Re-read the configuration and key files (the node got SIGHUP). */
  | { readonly t: 'reload' };

/** The environment a worker is started with. */
export const HOLDER_ENV = 'PETREL_WORKER_HOLDER';
export const INDEX_ENV = 'PETREL_WORKER_INDEX';
