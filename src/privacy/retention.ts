import type { Logger } from '../logging/index.js';
import type { RetentionCounts, Spool } from '../spool/index.js';

export interface RetentionSettings {
  readonly bodies: number;
  readonly records: number;
  readonly interval: number;
}

/** Runs the retention sweep now and then every `interval`; returns a stop function. */
export function startRetention(
  spool: Spool,
  settings: RetentionSettings,
  logger: Logger,
  onSweep: (counts: RetentionCounts) => void,
): () => void {
  const run = async (): Promise<void> => {
    // One node of a cluster sweeps at a time.
    if (!(await spool.claim('retention'))) return;
    const counts = await spool.privacy.sweep(Date.now(), settings.bodies, settings.records);
    if (counts.bodies + counts.messages + counts.events + counts.bounces > 0) {
      await spool.privacy.scrub();
      logger.info({ ...counts }, 'retention sweep');
    }
    onSweep(counts);
  };
  const tick = (): void =>
    void run().catch((err: unknown) => logger.error({ err }, 'retention sweep failed'));
  const first = setTimeout(tick, 5_000);
  const timer = setInterval(tick, settings.interval);
  first.unref();
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
