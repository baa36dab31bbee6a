import type { Db } from './db.js';

/** What an earlier call with the same Idempotency-Key left. */
export type IdempotencyRecord =
  | { readonly state: 'new' }
  | { readonly state: 'pending'; readonly bodyHash: string }
  | { readonly state: 'done'; readonly bodyHash: string; readonly status: number; readonly response: string };

/**
 * Idempotency keys of API calls, per API key, kept a day. A call claims its key before it sends;
 * a claim left by a process that died mid-call stays pending, so that a retry is refused rather
 * than risk a second copy.
 */
export interface IdempotencyStore {
  /** Claims the key for this call ('new'), or tells what an earlier call with it left. */
  begin(apiKey: string, key: string, bodyHash: string, now: number): Promise<IdempotencyRecord>;
  /** Keeps the answer that a retry with the same key and body is given again. */
  finish(apiKey: string, key: string, status: number, response: string): Promise<void>;
  /** Lets the key go again: the call sent nothing. */
  abandon(apiKey: string, key: string): Promise<void>;
}

export const IDEMPOTENCY_TTL_MS = 86_400_000;
const PRUNE_EVERY_MS = 60_000;

export interface IdempotencyRow {
  body_hash: string;
  status: number | null;
  response: string | null;
}

export function recordOf(row: IdempotencyRow | undefined): IdempotencyRecord {
  if (!row) return { state: 'pending', bodyHash: '' };
  if (row.status === null || row.response === null) return { state: 'pending', bodyHash: row.body_hash };
  return { state: 'done', bodyHash: row.body_hash, status: Number(row.status), response: row.response };
}

/** Whether a day-old sweep is due now (one a minute per process). */
export function pruneGate(): (now: number) => boolean {
  let last = -Infinity;
  return (now) => {
    if (now - last < PRUNE_EVERY_MS) return false;
    last = now;
    return true;
  };
}

export function createIdempotencyStore(db: Db): IdempotencyStore {
  const claim = db.prepare(
    `INSERT INTO api_idempotency (api_key, idem_key, body_hash, created_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (api_key, idem_key) DO NOTHING`,
  );
  const read = db.prepare<[string, string], IdempotencyRow>(
    'SELECT body_hash, status, response FROM api_idempotency WHERE api_key = ? AND idem_key = ?',
  );
  const finish = db.prepare(
    'UPDATE api_idempotency SET status = ?, response = ? WHERE api_key = ? AND idem_key = ?',
  );
  const abandon = db.prepare(
    'DELETE FROM api_idempotency WHERE api_key = ? AND idem_key = ? AND status IS NULL',
  );
  const prune = db.prepare('DELETE FROM api_idempotency WHERE created_at < ?');
  const due = pruneGate();
  return {
    async begin(apiKey, key, bodyHash, now) {
      if (due(now)) prune.run(now - IDEMPOTENCY_TTL_MS);
      if (claim.run(apiKey, key, bodyHash, now).changes > 0) return { state: 'new' };
      return recordOf(read.get(apiKey, key));
    },
    async finish(apiKey, key, status, response) {
      finish.run(status, response, apiKey, key);
    },
    async abandon(apiKey, key) {
      abandon.run(apiKey, key);
    },
  };
}
