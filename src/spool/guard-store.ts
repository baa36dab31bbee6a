import type { Clock } from '../shared/index.js';
import type { Db } from './db.js';

/** An account whose marketing mail is paused: new marketing mail is refused, queued waits. */
export interface AccountPause {
  readonly accountId: number;
  /** Why, one line ("complaint rate 0.52% over 1000 deliveries"). */
  readonly reason: string;
  readonly createdAt: number;
}

/** What an account's recent mail drew, over its last deliveries within a time window. */
export interface AccountHealth {
  readonly delivered: number;
  readonly complaints: number;
  readonly hardBounces: number;
  /** Start of the window counted (the oldest of the deliveries counted, or `since`). */
  readonly from: number;
}

/** The complaint- and bounce-rate guard's view of the spool (see src/app/guard.ts). */
export interface GuardStore {
  /** Accounts with a delivery since `since`. */
  activeAccounts(since: number): Promise<number[]>;
  /**
   * Over the account's last `lastDeliveries` deliveries since `since` (or since its last resume,
   * if later): what they drew since.
   */
  health(accountId: number, since: number, lastDeliveries: number): Promise<AccountHealth>;
  pauses(): Promise<AccountPause[]>;
  /** True when the account was not paused before. */
  pause(accountId: number, reason: string): Promise<boolean>;
  /** True when the account was paused. */
  resume(accountId: number): Promise<boolean>;
}

/** SQL shared by both backends; $n placeholders, each used once and in order (SQLite reads ?). */
export const GUARD_SQL = {
  active: `SELECT DISTINCT account_id AS id FROM events WHERE type = 'delivery' AND at >= $1 AND account_id IS NOT NULL`,
  nth: `SELECT at FROM events WHERE type = 'delivery' AND account_id = $1 AND at >= $2 ORDER BY at DESC LIMIT 1 OFFSET $3`,
  delivered: `SELECT count(*) AS n FROM events WHERE type = 'delivery' AND account_id = $1 AND at >= $2`,
  drawn: `SELECT coalesce(sum(CASE WHEN category = 'complaint' THEN 1 ELSE 0 END), 0) AS complaints,
            coalesce(sum(CASE WHEN category = 'hard' THEN 1 ELSE 0 END), 0) AS hard
          FROM bounces WHERE account_id = $1 AND at >= $2`,
  resumedAt: `SELECT resumed_at FROM account_pauses WHERE account_id = $1`,
  pauses: `SELECT account_id, reason, created_at FROM account_pauses WHERE resumed_at IS NULL ORDER BY account_id`,
  // A resumed account keeps its row: the guard then counts only what came after the resume.
  pause: `INSERT INTO account_pauses (account_id, reason, created_at) VALUES ($1, $2, $3)
    ON CONFLICT (account_id) DO UPDATE SET reason = excluded.reason, created_at = excluded.created_at, resumed_at = NULL
    WHERE account_pauses.resumed_at IS NOT NULL`,
  resume: `UPDATE account_pauses SET resumed_at = $1 WHERE account_id = $2 AND resumed_at IS NULL`,
} as const;

const sqlite = (sql: string): string => sql.replace(/\$\d+/g, '?');

export function createGuardStore(db: Db, clock: Clock): GuardStore {
  const active = db.prepare<[number], { id: number }>(sqlite(GUARD_SQL.active));
  const nth = db.prepare<[number, number, number], { at: number }>(sqlite(GUARD_SQL.nth));
  const delivered = db.prepare<[number, number], { n: number }>(sqlite(GUARD_SQL.delivered));
  const drawn = db.prepare<[number, number], { complaints: number; hard: number }>(sqlite(GUARD_SQL.drawn));
  const pauses = db.prepare<[], { account_id: number; reason: string; created_at: number }>(GUARD_SQL.pauses);
  const pause = db.prepare(sqlite(GUARD_SQL.pause));
  const resumedAt = db.prepare<[number], { resumed_at: number | null }>(sqlite(GUARD_SQL.resumedAt));
  const resume = db.prepare(sqlite(GUARD_SQL.resume));
  return {
    async activeAccounts(since) {
      return active.all(since).map((r) => r.id);
    },
    async health(accountId, windowStart, lastDeliveries) {
      const since = Math.max(windowStart, resumedAt.get(accountId)?.resumed_at ?? -Infinity);
      const from = nth.get(accountId, since, lastDeliveries - 1)?.at ?? since;
      const d = drawn.get(accountId, from)!;
      return {
        delivered: delivered.get(accountId, from)!.n,
        complaints: d.complaints,
        hardBounces: d.hard,
        from,
      };
    },
    async pauses() {
      return pauses
        .all()
        .map((r) => ({ accountId: r.account_id, reason: r.reason, createdAt: r.created_at }));
    },
    async pause(accountId, reason) {
      return pause.run(accountId, reason, clock.now()).changes > 0;
    },
    async resume(accountId) {
      return resume.run(clock.now(), accountId).changes > 0;
    },
  };
}
