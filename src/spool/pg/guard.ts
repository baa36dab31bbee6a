import type { Clock } from '../../shared/index.js';
import { GUARD_SQL, type GuardStore } from '../guard-store.js';
import type { PgDb } from './db.js';

export function createPgGuardStore(db: PgDb, clock: Clock, notify: () => Promise<void>): GuardStore {
  return {
    async activeAccounts(since) {
      return (await db.rows<{ id: string | number }>(GUARD_SQL.active, [since])).map((r) => Number(r.id));
    },
    async health(accountId, windowStart, lastDeliveries) {
      const [resumed] = await db.rows<{ resumed_at: string | number | null }>(GUARD_SQL.resumedAt, [
        accountId,
      ]);
      const since = Math.max(
        windowStart,
        resumed?.resumed_at == null ? -Infinity : Number(resumed.resumed_at),
      );
      const [row] = await db.rows<{ at: string | number }>(GUARD_SQL.nth, [
        accountId,
        since,
        lastDeliveries - 1,
      ]);
      const from = row === undefined ? since : Number(row.at);
      const [n] = await db.rows<{ n: string | number }>(GUARD_SQL.delivered, [accountId, from]);
      const [d] = await db.rows<{ complaints: string | number; hard: string | number }>(GUARD_SQL.drawn, [
        accountId,
        from,
      ]);
      return {
        delivered: Number(n?.n ?? 0),
        complaints: Number(d?.complaints ?? 0),
        hardBounces: Number(d?.hard ?? 0),
        from,
      };
    },
    async pauses() {
      const rows = await db.rows<{
        account_id: string | number;
        reason: string;
        created_at: string | number;
      }>(GUARD_SQL.pauses);
      return rows.map((r) => ({
        accountId: Number(r.account_id),
        reason: r.reason,
        createdAt: Number(r.created_at),
      }));
    },
    async pause(accountId, reason) {
      const n = await db.run(GUARD_SQL.pause, [accountId, reason, clock.now()]);
      if (n > 0) await notify();
      return n > 0;
    },
    async resume(accountId) {
      const n = await db.run(GUARD_SQL.resume, [clock.now(), accountId]);
      if (n > 0) await notify();
      return n > 0;
    },
  };
}
