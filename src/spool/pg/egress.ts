import { pruneBefore, type EgressStore, type EgressUsage } from '../egress-store.js';
import type { PgDb } from './db.js';

export function createPgEgressStore(db: PgDb): EgressStore {
  let prunedFor = '';
  return {
    async take(source, provider, day, n, cap) {
      if (prunedFor !== day) {
        prunedFor = day;
        await db.run('DELETE FROM egress_usage WHERE day < $1', [pruneBefore(day)]);
      }
      // The row is locked by the upsert: a racing take waits and then sees this count.
      const taken = await db.run(
        `INSERT INTO egress_usage AS u (source, provider, day, sent)
         SELECT $1, $2, $3, $4::integer WHERE $4::integer <= $5::integer
         ON CONFLICT (source, provider, day) DO UPDATE SET sent = u.sent + excluded.sent
         WHERE u.sent + excluded.sent <= $5::integer`,
        [source, provider, day, n, cap],
      );
      return taken > 0;
    },
    async usage(day) {
      const rows = await db.rows<{ source: string; provider: string; day: string; sent: number | string }>(
        'SELECT source, provider, day, sent FROM egress_usage WHERE day = $1 ORDER BY source, provider',
        [day],
      );
      return rows.map((r): EgressUsage => ({ ...r, sent: Number(r.sent) }));
    },
  };
}
