import {
  answers,
  newToken,
  splitToken,
  toApiKey,
  touchGate,
  type ApiKeyStore,
  type KeyRow,
} from '../key-store.js';
import type { PgDb } from './db.js';

const SELECT = `SELECT k.*, a.name AS account_name FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id`;

export function createPgKeyStore(db: PgDb): ApiKeyStore {
  const gate = touchGate();
  const one = async (id: string): Promise<KeyRow | undefined> =>
    (await db.rows<KeyRow>(`${SELECT} WHERE k.id = $1`, [id], 'key-by-id'))[0];
  return {
    async create(key, now) {
      const t = newToken();
      await db.run(
        `INSERT INTO api_keys (id, account_id, name, secret_hash, scopes, networks, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          t.id,
          key.accountId,
          key.name ?? null,
          t.secretHash,
          key.scopes.join(','),
          (key.networks ?? []).join(','),
          now,
          key.expiresAt ?? null,
        ],
      );
      return { key: toApiKey((await one(t.id))!), token: t.token };
    },
    async verify(token, now) {
      const parts = splitToken(token);
      if (!parts) return null;
      const row = await one(parts.id);
      return answers(row, parts.secret, now) ? toApiKey(row) : null;
    },
    async touch(id, at) {
      if (gate(id, at)) await db.run('UPDATE api_keys SET last_used_at = $1 WHERE id = $2', [at, id]);
    },
    async list(accountId) {
      const order = 'ORDER BY k.created_at DESC, k.id';
      const rows =
        accountId === undefined
          ? await db.rows<KeyRow>(`${SELECT} ${order}`)
          : accountId === null
            ? await db.rows<KeyRow>(`${SELECT} WHERE k.account_id IS NULL ${order}`)
            : await db.rows<KeyRow>(`${SELECT} WHERE k.account_id = $1 ${order}`, [accountId]);
      return rows.map(toApiKey);
    },
    async revoke(id, now) {
      return (
        (await db.run('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [
          now,
          id,
        ])) > 0
      );
    },
  };
}
