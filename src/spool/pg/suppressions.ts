import { canonicalAddress, type Clock } from '../../shared/index.js';
import { addressKeys } from '../address-keys.js';
import { toSuppressionRecord, type SuppressionRow, type SuppressionStore } from '../suppression-store.js';
import type { PgDb } from './db.js';
import { PG_COUNT_SOFT_BOUNCES, PG_INSERT_BOUNCE, PG_INSERT_SUPPRESSION } from './writer.js';

/**
 * Suppressions, bounces and unsubscribe tokens on PostgreSQL, keyed exactly as on SQLite
 * (address-keys.ts). These writes are off the hot path: each is one statement on the pool.
 */
export function createPgSuppressionStore(db: PgDb, secret: Buffer, clock: Clock): SuppressionStore {
  const keys = addressKeys(secret);
  const { addressKey } = keys;
  return {
    addressKey,
    async add(entry) {
      const canonical = canonicalAddress(entry.address);
      if (!canonical) throw new Error(`not an email address: ${entry.address}`);
      const n = await db.run(PG_INSERT_SUPPRESSION, [
        entry.accountId,
        addressKey(canonical),
        canonical,
        entry.scope,
        entry.reason,
        entry.source,
        clock.now(),
      ]);
      return n > 0;
    },
    async remove(accountId, address) {
      return db.run(
        'DELETE FROM suppressions WHERE address_hash = $1 AND account_id IS NOT DISTINCT FROM $2',
        [addressKey(address), accountId],
      );
    },
    async find(accountId, address) {
      const rows = await db.rows<SuppressionRow>(
        `SELECT * FROM suppressions WHERE address_hash = $1
           AND (account_id IS NULL OR account_id IS NOT DISTINCT FROM $2) ORDER BY created_at, id`,
        [addressKey(address), accountId],
        'petrel_find_suppressions',
      );
      return rows.map(toSuppressionRecord);
    },
    async list(filter) {
      const scoped = filter.accountId !== undefined;
      const rows = await db.rows<SuppressionRow>(
        `SELECT * FROM suppressions ${scoped ? 'WHERE account_id IS NOT DISTINCT FROM $2' : ''}
         ORDER BY created_at, id LIMIT $1`,
        scoped ? [filter.limit ?? null, filter.accountId ?? null] : [filter.limit ?? null],
      );
      return rows.map(toSuppressionRecord);
    },
    async recordBounce(b) {
      await db.run(
        PG_INSERT_BOUNCE,
        keys.bounceParams(b, canonicalAddress(b.address) ?? b.address, clock.now()),
      );
    },
    planBounce(b, rule) {
      return keys.planBounce(b, rule, clock.now());
    },
    async softBouncesSince(accountId, address, since) {
      const [row] = await db.rows<{ n: number }>(PG_COUNT_SOFT_BOUNCES, [
        addressKey(address),
        accountId,
        since,
      ]);
      return row?.n ?? 0;
    },
    async unsubscribeToken(accountId, address, ttlMs) {
      const canonical = canonicalAddress(address) ?? address;
      const key = addressKey(canonical);
      const now = clock.now();
      // Reused while more than half its life remains, so one address does not mint a token per message.
      const [existing] = await db.rows<{ token: string }>(
        `SELECT token FROM unsubscribe_tokens
         WHERE address_hash = $1 AND account_id IS NOT DISTINCT FROM $2 AND expires_at > $3 LIMIT 1`,
        // Floored: for whole-millisecond expiries, the same test as against the exact half.
        [key, accountId, Math.floor(now + ttlMs / 2)],
      );
      if (existing) return existing.token;
      const token = keys.newToken();
      await db.run(
        `INSERT INTO unsubscribe_tokens (token, account_id, address_hash, address, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [token, accountId, key, canonical, now, now + ttlMs],
      );
      return token;
    },
    async resolveUnsubscribeToken(token) {
      // The MAC is checked before any lookup, so guessing costs nothing and finds nothing.
      if (!keys.tokenValid(token)) return null;
      const [row] = await db.rows<{ account_id: number | null; address: string }>(
        'SELECT account_id, address FROM unsubscribe_tokens WHERE token = $1 AND expires_at > $2',
        [token, clock.now()],
      );
      return row ? { accountId: row.account_id, address: row.address } : null;
    },
  };
}
