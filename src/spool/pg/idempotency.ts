import {
  IDEMPOTENCY_TTL_MS,
  pruneGate,
  recordOf,
  type IdempotencyRow,
  type IdempotencyStore,
} from '../idempotency-store.js';
import type { PgDb } from './db.js';

export function createPgIdempotencyStore(db: PgDb): IdempotencyStore {
  const due = pruneGate();
  return {
    async begin(apiKey, key, bodyHash, now) {
      if (due(now))
        await db.run('DELETE FROM api_idempotency WHERE created_at < $1', [now - IDEMPOTENCY_TTL_MS]);
      // The primary key decides between nodes racing with one key: one insert wins.
      const claimed = await db.run(
        `INSERT INTO api_idempotency (api_key, idem_key, body_hash, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (api_key, idem_key) DO NOTHING`,
        [apiKey, key, bodyHash, now],
      );
      if (claimed > 0) return { state: 'new' };
      const rows = await db.rows<IdempotencyRow>(
        'SELECT body_hash, status, response FROM api_idempotency WHERE api_key = $1 AND idem_key = $2',
        [apiKey, key],
      );
      return recordOf(rows[0]);
    },
    async finish(apiKey, key, status, response) {
      await db.run(
        'UPDATE api_idempotency SET status = $1, response = $2 WHERE api_key = $3 AND idem_key = $4',
        [status, response, apiKey, key],
      );
    },
    async abandon(apiKey, key) {
      await db.run('DELETE FROM api_idempotency WHERE api_key = $1 AND idem_key = $2 AND status IS NULL', [
        apiKey,
        key,
      ]);
    },
  };
}
