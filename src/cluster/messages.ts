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
  /** Wants the node's metrics (a scrape came to this worker). */
  | { readonly t: 'scrape'; readonly id: number }
  /** This worker's own metrics, asked for by a `collect`. */
  | { readonly t: 'collected'; readonly id: number; readonly metrics: unknown };

export type PrimaryMessage =
  | { readonly t: 'granted'; readonly id: number }
  | { readonly t: 'reserved'; readonly id: number; readonly at: number }
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
