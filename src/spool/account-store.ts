import { AccountError, type Clock, type RateLimit } from '../shared/index.js';
import type { Db } from './db.js';

/** What an account may send; null: no limit. */
export interface AccountLimits {
  /** Recipients accepted per window, counted for the node (the cluster, with Redis). */
  readonly rate: RateLimit | null;
  /** Recipients accepted per UTC day. */
  readonly dailyQuota: number | null;
  /** The [[egress]] source its mail goes out from, over the destination's. */
  readonly egress: string | null;
}

/** A change of limits: an absent field keeps its value, null clears it. */
export type AccountLimitsChange = { readonly [K in keyof AccountLimits]?: AccountLimits[K] };

export const NO_LIMITS: AccountLimits = { rate: null, dailyQuota: null, egress: null };

/** A sending account: SMTP credentials and the sender domains it may use. */
export interface Account {
  readonly id: number;
  readonly name: string;
  readonly passwordHash: string;
  readonly allowedDomains: readonly string[];
  /** The stream of its mail when a message does not say (X-Petrel-Stream). */
  readonly defaultStream: 'transactional' | 'marketing';
  readonly limits: AccountLimits;
  readonly createdAt: number;
}

export interface AccountStore {
  /** Throws AccountError PETREL_ACCOUNT_EXISTS when the name is taken. */
  add(
    name: string,
    passwordHash: string,
    allowedDomains: readonly string[],
    defaultStream?: 'transactional' | 'marketing',
    limits?: AccountLimits,
  ): Promise<Account>;
  /**
   * Looks the account up afresh on every call, or (PostgreSQL) from a cache that every account
   * change clears on every node as soon as its notification arrives: CLI changes apply at once.
   */
  get(name: string): Promise<Account | null>;
  list(): Promise<Account[]>;
  /** False when there was no such account. */
  remove(name: string): Promise<boolean>;
  /** Throws AccountError PETREL_ACCOUNT_NOT_FOUND when there is no such account. */
  setPassword(name: string, passwordHash: string): Promise<void>;
  /** Throws AccountError PETREL_ACCOUNT_NOT_FOUND when there is no such account; resolves with it changed. */
  setLimits(name: string, change: AccountLimitsChange): Promise<Account>;
  /**
   * Recipients queued for the account since `since` (epoch ms), from the reception events of
   * the delivery log: what a count kept in memory had reached before a restart. Events that
   * erasure or retention removed are not counted.
   */
  recipientsQueuedSince(accountId: number, since: number): Promise<number>;
}

/** The limits' columns, shared by both backends' rows. */
export interface LimitColumns {
  rate_count: number | null;
  rate_window_ms: number | null;
  daily_quota: number | null;
  egress: string | null;
}

export function limitsOf(row: LimitColumns): AccountLimits {
  return {
    rate:
      row.rate_count !== null && row.rate_window_ms !== null
        ? { count: Number(row.rate_count), windowMs: Number(row.rate_window_ms) }
        : null,
    dailyQuota: row.daily_quota === null ? null : Number(row.daily_quota),
    egress: row.egress ?? null,
  };
}

/** The columns' values for `limits`, in the order rate_count, rate_window_ms, daily_quota, egress. */
export function limitColumns(
  limits: AccountLimits,
): [number | null, number | null, number | null, string | null] {
  return [limits.rate?.count ?? null, limits.rate?.windowMs ?? null, limits.dailyQuota, limits.egress];
}

interface AccountRow extends LimitColumns {
  id: number;
  name: string;
  password_hash: string;
  allowed_domains: string;
  default_stream: 'transactional' | 'marketing';
  created_at: number;
}

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    name: row.name,
    passwordHash: row.password_hash,
    allowedDomains: JSON.parse(row.allowed_domains) as string[],
    defaultStream: row.default_stream,
    limits: limitsOf(row),
    createdAt: row.created_at,
  };
}

export function createAccountStore(db: Db, clock: Clock): AccountStore {
  const insert = db.prepare(
    `INSERT INTO accounts (name, password_hash, allowed_domains, default_stream, rate_count, rate_window_ms,
       daily_quota, egress, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING *`,
  );
  const updateLimits = db.prepare<
    [number | null, number | null, number | null, string | null, number, string],
    AccountRow
  >(
    `UPDATE accounts SET rate_count = ?, rate_window_ms = ?, daily_quota = ?, egress = ?, updated_at = ? WHERE name = ?
     RETURNING *`,
  );
  const queuedSince = db.prepare<[number, number], { n: number }>(
    `SELECT coalesce(sum(json_extract(details, '$.recipients')), 0) AS n FROM events
     WHERE type = 'reception' AND account_id = ? AND at >= ?`,
  );
  const byName = db.prepare<[string], AccountRow>('SELECT * FROM accounts WHERE name = ?');
  const all = db.prepare<[], AccountRow>('SELECT * FROM accounts ORDER BY name');
  const del = db.prepare('DELETE FROM accounts WHERE name = ?');
  const setHash = db.prepare('UPDATE accounts SET password_hash = ?, updated_at = ? WHERE name = ?');

  return {
    async add(name, passwordHash, allowedDomains, defaultStream = 'transactional', limits = NO_LIMITS) {
      const now = clock.now();
      const row = insert.get(
        name,
        passwordHash,
        JSON.stringify(allowedDomains),
        defaultStream,
        ...limitColumns(limits),
        now,
        now,
      ) as AccountRow | undefined;
      if (!row) throw new AccountError('PETREL_ACCOUNT_EXISTS', `account ${name} already exists`);
      return toAccount(row);
    },
    async get(name) {
      const row = byName.get(name);
      return row ? toAccount(row) : null;
    },
    async list() {
      return all.all().map(toAccount);
    },
    async remove(name) {
      return del.run(name).changes > 0;
    },
    async setPassword(name, passwordHash) {
      if (setHash.run(passwordHash, clock.now(), name).changes === 0) {
        throw new AccountError('PETREL_ACCOUNT_NOT_FOUND', `no account named ${name}`);
      }
    },
    async setLimits(name, change) {
      // One transaction: a concurrent change of the other limit is never undone.
      const row = db
        .transaction(() => {
          const current = byName.get(name);
          if (!current) return undefined;
          const next = { ...limitsOf(current), ...change };
          return updateLimits.get(...limitColumns(next), clock.now(), name);
        })
        .immediate();
      if (!row) throw new AccountError('PETREL_ACCOUNT_NOT_FOUND', `no account named ${name}`);
      return toAccount(row);
    },
    async recipientsQueuedSince(accountId, since) {
      return Number(queuedSince.get(accountId, since)?.n ?? 0);
    },
  };
}
