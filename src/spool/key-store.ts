import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './db.js';

/** What a key may do: send mail, read its messages and events, read bodies, run the node. */
export const KEY_SCOPES = ['send', 'read', 'content', 'admin'] as const;
export type KeyScope = (typeof KEY_SCOPES)[number];

/** An API key as stored; the secret itself is never kept, only its hash. */
export interface ApiKey {
  /** The public half of the token ("pk_…"), safe to log and to name in `petrel key revoke`. */
  readonly id: string;
  /** null: an operator key, which acts for any account. */
  readonly accountId: number | null;
  readonly accountName: string | null;
  readonly name: string | null;
  readonly scopes: readonly KeyScope[];
  /** Client networks the key is good from (CIDR); empty: anywhere. */
  readonly networks: readonly string[];
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
}

export interface NewApiKey {
  readonly accountId: number | null;
  readonly name?: string | null;
  readonly scopes: readonly KeyScope[];
  readonly networks?: readonly string[];
  readonly expiresAt?: number | null;
}

export interface ApiKeyStore {
  /** Stores a new key; the token is returned this once and cannot be read back. */
  create(key: NewApiKey, now: number): Promise<{ key: ApiKey; token: string }>;
  /** The key of a token if it is known, not revoked, not expired and its account still exists. */
  verify(token: string, now: number): Promise<ApiKey | null>;
  /** Notes a use; written at most once a minute per key and process. */
  touch(id: string, at: number): Promise<void>;
  /** Every key (undefined), an account's (a number) or the operator keys (null), newest first. */
  list(accountId?: number | null): Promise<ApiKey[]>;
  /** False when there is no such key or it was already revoked. */
  revoke(id: string, now: number): Promise<boolean>;
}

export interface KeyRow {
  id: string;
  account_id: number | string | null;
  account_name: string | null;
  name: string | null;
  secret_hash: string;
  scopes: string;
  networks: string;
  created_at: number | string;
  expires_at: number | string | null;
  last_used_at: number | string | null;
  revoked_at: number | string | null;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

export function toApiKey(r: KeyRow): ApiKey {
  return {
    id: r.id,
    accountId: num(r.account_id),
    accountName: r.account_name,
    name: r.name,
    scopes: r.scopes.split(',').filter((s): s is KeyScope => (KEY_SCOPES as readonly string[]).includes(s)),
    networks: r.networks ? r.networks.split(',') : [],
    createdAt: Number(r.created_at),
    expiresAt: num(r.expires_at),
    lastUsedAt: num(r.last_used_at),
    revokedAt: num(r.revoked_at),
  };
}

/**
 * The secret is 192 random bits, so one SHA-256 is as good as a slow hash here (nothing to guess
 * from a dictionary) and costs nothing per request.
 */
export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** A fresh token and what is stored of it. */
export function newToken(): { id: string; token: string; secretHash: string } {
  const id = `pk_${randomBytes(8).toString('hex')}`;
  const secret = randomBytes(24).toString('base64url');
  return { id, token: `${id}.${secret}`, secretHash: hashSecret(secret) };
}

/** The id and secret of a token, or null when it is not one of Petrel's. */
export function splitToken(token: string): { id: string; secret: string } | null {
  const m = /^(pk_[0-9a-f]{16})\.([A-Za-z0-9_-]{32})$/.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/** Whether a stored row answers this secret now. */
export function answers(row: KeyRow | undefined, secret: string, now: number): row is KeyRow {
  if (!row || row.revoked_at !== null) return false;
  if (row.expires_at !== null && Number(row.expires_at) <= now) return false;
  if (row.account_id !== null && row.account_name === null) return false;
  const want = Buffer.from(row.secret_hash, 'hex');
  const got = Buffer.from(hashSecret(secret), 'hex');
  return want.length === got.length && timingSafeEqual(want, got);
}

const TOUCH_EVERY_MS = 60_000;

/** A use is written at most once a minute per key: a busy key must not cost a write per request. */
export function touchGate(): (id: string, at: number) => boolean {
  const last = new Map<string, number>();
  return (id, at) => {
    if (at - (last.get(id) ?? -Infinity) < TOUCH_EVERY_MS) return false;
    if (last.size > 10_000) last.clear();
    last.set(id, at);
    return true;
  };
}

const SELECT = `SELECT k.*, a.name AS account_name FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id`;

export function createKeyStore(db: Db): ApiKeyStore {
  const insert = db.prepare(
    `INSERT INTO api_keys (id, account_id, name, secret_hash, scopes, networks, created_at, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const byId = db.prepare<[string], KeyRow>(`${SELECT} WHERE k.id = ?`);
  const all = db.prepare<[], KeyRow>(`${SELECT} ORDER BY k.created_at DESC, k.id`);
  const ofAccount = db.prepare<[number], KeyRow>(
    `${SELECT} WHERE k.account_id = ? ORDER BY k.created_at DESC, k.id`,
  );
  const operators = db.prepare<[], KeyRow>(
    `${SELECT} WHERE k.account_id IS NULL ORDER BY k.created_at DESC, k.id`,
  );
  const touch = db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?');
  const revoke = db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const gate = touchGate();
  return {
    async create(key, now) {
      const t = newToken();
      insert.run(
        t.id,
        key.accountId,
        key.name ?? null,
        t.secretHash,
        key.scopes.join(','),
        (key.networks ?? []).join(','),
        now,
        key.expiresAt ?? null,
      );
      return { key: toApiKey(byId.get(t.id)!), token: t.token };
    },
    async verify(token, now) {
      const parts = splitToken(token);
      if (!parts) return null;
      const row = byId.get(parts.id);
      return answers(row, parts.secret, now) ? toApiKey(row) : null;
    },
    async touch(id, at) {
      if (gate(id, at)) touch.run(at, id);
    },
    async list(accountId) {
      const rows =
        accountId === undefined ? all.all() : accountId === null ? operators.all() : ofAccount.all(accountId);
      return rows.map(toApiKey);
    },
    async revoke(id, now) {
      return revoke.run(now, id).changes > 0;
    },
  };
}
