import { AccountError, type Clock } from '../../shared/index.js';
import {
  NO_LIMITS,
  limitColumns,
  limitsOf,
  type Account,
  type AccountStore,
  type LimitColumns,
} from '../account-store.js';
import type { DkimKeyRecord, DkimKeyStore } from '../dkim-store.js';
import type { PgDb } from './db.js';

/**
 * Accounts looked up by name (every message's MAIL FROM), kept only while a change notification
 * would reach this node: the spool clears it on every notification (any node's or the CLI's
 * account change sends one) and does not cache while it is not listening.
 */
export interface AccountCache {
  get(name: string): Account | null | undefined;
  /** Stored only if no notification arrived since `epoch` was read (the read may be stale). */
  set(name: string, account: Account | null, epoch: number): void;
  epoch(): number;
}

interface AccountRow extends LimitColumns {
  id: number;
  name: string;
  password_hash: string;
  allowed_domains: string;
  default_stream: 'transactional' | 'marketing';
  created_at: number;
}

const toAccount = (row: AccountRow): Account => ({
  id: row.id,
  name: row.name,
  passwordHash: row.password_hash,
  allowedDomains: JSON.parse(row.allowed_domains) as string[],
  defaultStream: row.default_stream,
  limits: limitsOf(row),
  createdAt: row.created_at,
});

/**
 * Accounts on PostgreSQL. Changes notify the other nodes (see PgSpool.dataVersion), which
 * re-read what they cache.
 */
export function createPgAccountStore(
  db: PgDb,
  clock: Clock,
  notify: () => Promise<void>,
  cache: AccountCache,
): AccountStore {
  return {
    async add(name, passwordHash, allowedDomains, defaultStream = 'transactional', limits = NO_LIMITS) {
      const now = clock.now();
      const [row] = await db.rows<AccountRow>(
        `INSERT INTO accounts (name, password_hash, allowed_domains, default_stream, rate_count, rate_window_ms,
           daily_quota, egress, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (name) DO NOTHING RETURNING *`,
        [name, passwordHash, JSON.stringify(allowedDomains), defaultStream, ...limitColumns(limits), now],
      );
      if (!row) throw new AccountError('PETREL_ACCOUNT_EXISTS', `account ${name} already exists`);
      await notify();
      return toAccount(row);
    },
    async get(name) {
      const cached = cache.get(name);
      if (cached !== undefined) return cached;
      const epoch = cache.epoch();
      const [row] = await db.rows<AccountRow>(
        'SELECT * FROM accounts WHERE name = $1',
        [name],
        'petrel_account',
      );
      const account = row ? toAccount(row) : null;
      cache.set(name, account, epoch);
      return account;
    },
    async list() {
      return (await db.rows<AccountRow>('SELECT * FROM accounts ORDER BY name')).map(toAccount);
    },
    async remove(name) {
      const n = await db.run('DELETE FROM accounts WHERE name = $1', [name]);
      if (n > 0) await notify();
      return n > 0;
    },
    async setPassword(name, passwordHash) {
      const n = await db.run('UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE name = $3', [
        passwordHash,
        clock.now(),
        name,
      ]);
      if (n === 0) throw new AccountError('PETREL_ACCOUNT_NOT_FOUND', `no account named ${name}`);
      await notify();
    },
    async setLimits(name, change) {
      // Row-locked, so a concurrent change of the other limit is never undone.
      const row = await db.tx(async (q) => {
        const [current] = await q.rows<AccountRow>('SELECT * FROM accounts WHERE name = $1 FOR UPDATE', [
          name,
        ]);
        if (!current) return undefined;
        const next = { ...limitsOf(current), ...change };
        const [updated] = await q.rows<AccountRow>(
          `UPDATE accounts SET rate_count = $1, rate_window_ms = $2, daily_quota = $3, egress = $4, updated_at = $5
           WHERE name = $6 RETURNING *`,
          [...limitColumns(next), clock.now(), name],
        );
        return updated;
      });
      if (!row) throw new AccountError('PETREL_ACCOUNT_NOT_FOUND', `no account named ${name}`);
      await notify();
      return toAccount(row);
    },
    async recipientsQueuedSince(accountId, since) {
      const [row] = await db.rows<{ n: string | number }>(
        `SELECT coalesce(sum((details::json ->> 'recipients')::bigint), 0) AS n FROM events
         WHERE type = 'reception' AND account_id = $1 AND at >= $2`,
        [accountId, since],
      );
      return Number(row?.n ?? 0);
    },
  };
}

interface KeyRow {
  domain: string;
  selector: string;
  algorithm: 'rsa' | 'ed25519';
  private_key_path: string;
  sealed_key: Buffer | null;
  public_key: string;
  active: number;
  created_at: number;
}

const toKey = (r: KeyRow): DkimKeyRecord => ({
  domain: r.domain,
  selector: r.selector,
  algorithm: r.algorithm,
  privateKeyPath: r.private_key_path,
  sealedKey: r.sealed_key ?? null,
  publicKey: r.public_key,
  active: r.active === 1,
  createdAt: r.created_at,
});

export function createPgDkimKeyStore(db: PgDb, clock: Clock, notify: () => Promise<void>): DkimKeyStore {
  return {
    async add(k) {
      const added = await db.tx(async (q) => {
        // One key change per domain at a time, so two nodes cannot both make theirs active.
        await q.run('SELECT pg_advisory_xact_lock(hashtext($1))', [`dkim:${k.domain}`]);
        const exists = await q.rows('SELECT 1 FROM dkim_keys WHERE domain = $1 AND selector = $2', [
          k.domain,
          k.selector,
        ]);
        if (exists.length > 0) return false;
        await q.run('UPDATE dkim_keys SET active = 0 WHERE domain = $1 AND algorithm = $2', [
          k.domain,
          k.algorithm,
        ]);
        await q.run(
          `INSERT INTO dkim_keys (domain, selector, algorithm, private_key_path, public_key, active, created_at, sealed_key)
           VALUES ($1, $2, $3, $4, $5, 1, $6, $7)`,
          [
            k.domain,
            k.selector,
            k.algorithm,
            k.privateKeyPath,
            k.publicKey,
            clock.now(),
            k.sealedKey ?? null,
          ],
        );
        return true;
      });
      if (added) await notify();
      return added;
    },
    async list() {
      return (await db.rows<KeyRow>('SELECT * FROM dkim_keys ORDER BY domain, created_at')).map(toKey);
    },
    async active() {
      return (
        await db.rows<KeyRow>('SELECT * FROM dkim_keys WHERE active = 1 ORDER BY domain, algorithm')
      ).map(toKey);
    },
  };
}
