import { canonicalAddress, type Clock } from '../shared/index.js';
import {
  addressKeys,
  type BounceRecordInput,
  type BounceRule,
  type SuppressionScope,
} from './address-keys.js';
import type { Db } from './db.js';
import {
  COUNT_SOFT_BOUNCES,
  INSERT_BOUNCE,
  INSERT_SUPPRESSION,
  type BounceWrite,
  type SqlValue,
} from './hot-ops.js';
import type { Writer } from './writer.js';

export type { BounceRecordInput, BounceRule, SuppressionScope } from './address-keys.js';

export interface SuppressionRecord {
  readonly accountId: number | null;
  /** Null once the address was erased: only its keyed hash remains. */
  readonly address: string | null;
  readonly addressHash: string;
  readonly scope: SuppressionScope;
  readonly reason: string;
  readonly source: string;
  readonly createdAt: number;
}

export interface SuppressionStore {
  /** The keyed hash (HMAC, per-install secret) an address is matched by, even after erasure. */
  addressKey(address: string): string;
  /** False when an equal entry existed. Throws on a non-address. */
  add(entry: {
    accountId: number | null;
    address: string;
    scope: SuppressionScope;
    reason: string;
    source: string;
  }): Promise<boolean>;
  /** Removes the entries for the address in that list (account, or null: global); returns how many. */
  remove(accountId: number | null, address: string): Promise<number>;
  /** Entries that stop mail from `accountId` to `address`: the account's list plus the global one. */
  find(accountId: number | null, address: string): Promise<SuppressionRecord[]>;
  list(filter: { accountId?: number | null; limit?: number }): Promise<SuppressionRecord[]>;
  recordBounce(input: BounceRecordInput): Promise<void>;
  /**
   * The rows a bounce writes, for QueueStore.complete to commit with the outcome that caused it:
   * the bounce record, and the suppression `rule` asks for (always, or once the soft bounces in
   * its window, this one included, reach its limit), or none.
   */
  planBounce(
    input: BounceRecordInput & { readonly recipientId: number },
    rule: BounceRule | null,
  ): BounceWrite;
  /** Soft bounces for the address (in the account) since `since`. */
  softBouncesSince(accountId: number | null, address: string, since: number): Promise<number>;
  /** A signed one-click unsubscribe token for (account, address), reused while valid. */
  unsubscribeToken(accountId: number | null, address: string, ttlMs: number): Promise<string>;
  /** The (account, address) of a valid, unexpired token; null otherwise. */
  resolveUnsubscribeToken(token: string): Promise<{ accountId: number | null; address: string } | null>;
}

/** A suppressions row as both backends read it. */
export interface SuppressionRow {
  account_id: number | null;
  address: string | null;
  address_hash: string;
  scope: SuppressionScope;
  reason: string;
  source: string;
  created_at: number;
}

export const toSuppressionRecord = (r: SuppressionRow): SuppressionRecord => ({
  accountId: r.account_id,
  address: r.address,
  addressHash: r.address_hash,
  scope: r.scope,
  reason: r.reason,
  source: r.source,
  createdAt: r.created_at,
});

export function createSuppressionStore(
  db: Db,
  secret: Buffer,
  clock: Clock,
  writer: Writer,
): SuppressionStore {
  const keys = addressKeys(secret);
  const { addressKey } = keys;

  // Writes go through the writer (its thread in the daemon), so none waits for SQLite's lock
  // on the event loop.
  const exec = (sql: string, ...params: SqlValue[]) => writer.run({ op: 'exec', sql, params });
  const insert = INSERT_SUPPRESSION;
  const del = 'DELETE FROM suppressions WHERE address_hash = ? AND account_id IS ?';
  const find = db.prepare<[string, number | null], SuppressionRow>(
    'SELECT * FROM suppressions WHERE address_hash = ? AND (account_id IS NULL OR account_id IS ?) ORDER BY created_at',
  );
  const insertBounce = INSERT_BOUNCE;
  const softSince = db.prepare<[string, number | null, number], { n: number }>(COUNT_SOFT_BOUNCES);
  const tokenFind = db.prepare<[string, number | null, number], { token: string }>(
    'SELECT token FROM unsubscribe_tokens WHERE address_hash = ? AND account_id IS ? AND expires_at > ? LIMIT 1',
  );
  const tokenInsert =
    'INSERT INTO unsubscribe_tokens (token, account_id, address_hash, address, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)';
  const tokenGet = db.prepare<[string, number], { account_id: number | null; address: string }>(
    'SELECT account_id, address FROM unsubscribe_tokens WHERE token = ? AND expires_at > ?',
  );

  return {
    addressKey,
    async add(entry) {
      const canonical = canonicalAddress(entry.address);
      if (!canonical) throw new Error(`not an email address: ${entry.address}`);
      const r = await exec(
        insert,
        entry.accountId,
        addressKey(canonical),
        canonical,
        entry.scope,
        entry.reason,
        entry.source,
        clock.now(),
      );
      return r.changes > 0;
    },
    async remove(accountId, address) {
      return (await exec(del, addressKey(address), accountId)).changes;
    },
    async find(accountId, address) {
      return find.all(addressKey(address), accountId).map(toSuppressionRecord);
    },
    async list(filter) {
      const where = filter.accountId === undefined ? '' : 'WHERE account_id IS ?';
      const params: (number | null)[] = filter.accountId === undefined ? [] : [filter.accountId];
      return db
        .prepare<(number | null)[], SuppressionRow>(
          `SELECT * FROM suppressions ${where} ORDER BY created_at, id LIMIT ?`,
        )
        .all(...params, filter.limit ?? -1)
        .map(toSuppressionRecord);
    },
    async recordBounce(b) {
      await exec(
        insertBounce,
        ...keys.bounceParams(b, canonicalAddress(b.address) ?? b.address, clock.now()),
      );
    },
    planBounce(b, rule) {
      return keys.planBounce(b, rule, clock.now());
    },
    async softBouncesSince(accountId, address, since) {
      return softSince.get(addressKey(address), accountId, since)!.n;
    },
    async unsubscribeToken(accountId, address, ttlMs) {
      const canonical = canonicalAddress(address) ?? address;
      const key = addressKey(canonical);
      const now = clock.now();
      // Reused while more than half its life remains, so one address does not mint a token per message.
      const existing = tokenFind.get(key, accountId, now + ttlMs / 2);
      if (existing) return existing.token;
      const token = keys.newToken();
      await exec(tokenInsert, token, accountId, key, canonical, now, now + ttlMs);
      return token;
    },
    async resolveUnsubscribeToken(token) {
      // The MAC is checked before any lookup, so guessing costs nothing and finds nothing.
      if (!keys.tokenValid(token)) return null;
      const row = tokenGet.get(token, clock.now());
      return row ? { accountId: row.account_id, address: row.address } : null;
    },
  };
}
