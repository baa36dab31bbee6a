import type { Config } from '../config/index.js';

/**
 * One part of the daemon. The composition root (app.ts) starts the parts in order, closes them
 * in the order shutdown needs, and hands each the new configuration on SIGHUP.
 */
export interface Part<Started = void> {
  /**
   * The config keys whose changes `reload` applies; a key covers the keys under it. Any other
   * changed key is logged as restart-only.
   */
  readonly reloadable: readonly string[];
  /** Starts the part; what it returns is what later parts use of it. */
  start(): Promise<Started>;
  /**
   * Applies what it can of `next`; anything it cannot apply is left as it runs. Also re-reads
   * files whose contents may have changed behind unchanged settings (keys, certificates, secrets).
   */
  reload(next: Config): Promise<void>;
  /** Stops what `start` started, also after a start that failed part-way. Called once. */
  close(): Promise<void>;
}

/** Whether `key` is one of `keys` or lies under one of them. */
export function coveredBy(keys: readonly string[], key: string): boolean {
  return keys.some((k) => key === k || key.startsWith(`${k}.`));
}
