import type { Db } from './db.js';

/** Recipients a source sent a provider on a day, counted against its warm-up cap. */
export interface EgressUsage {
  readonly source: string;
  readonly provider: string;
  readonly day: string;
  readonly sent: number;
}

/** Warm-up counts, shared by every worker and node (they live in the spool). */
export interface EgressStore {
  /**
   * Counts `n` recipients for the source and provider on `day` if that keeps the count within
   * `cap`, in one statement, so that workers and nodes racing for the last places never both
   * get them. False: nothing counted.
   */
  take(source: string, provider: string, day: string, n: number, cap: number): Promise<boolean>;
  /** The counts of `day` ("2026-12-03"). */
  usage(day: string): Promise<EgressUsage[]>;
}

/** Counts older than this many days are dropped when a day's first count is taken. */
const KEEP_DAYS = 30;

export function pruneBefore(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) - KEEP_DAYS * 86_400_000).toISOString().slice(0, 10);
}

export function createEgressStore(db: Db): EgressStore {
  const take = db.prepare<{ source: string; provider: string; day: string; n: number; cap: number }>(
    `INSERT INTO egress_usage (source, provider, day, sent)
     SELECT @source, @provider, @day, @n WHERE @n <= @cap
     ON CONFLICT (source, provider, day) DO UPDATE SET sent = sent + excluded.sent
     WHERE sent + excluded.sent <= @cap`,
  );
  const usage = db.prepare<[string], EgressUsage>(
    'SELECT source, provider, day, sent FROM egress_usage WHERE day = ? ORDER BY source, provider',
  );
  const prune = db.prepare('DELETE FROM egress_usage WHERE day < ?');
  let prunedFor = '';
  return {
    async take(source, provider, day, n, cap) {
      if (prunedFor !== day) {
        prunedFor = day;
        prune.run(pruneBefore(day));
      }
      return take.run({ source, provider, day, n, cap }).changes > 0;
    },
    async usage(day) {
      return usage.all(day);
    },
  };
}
