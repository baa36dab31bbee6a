import { AccountError, type Clock } from '../shared/index.js';
import type { Db } from './db.js';

/** A sending account: SMTP credentials and the sender domains it may use. */
export interface Account {
  readonly id: number;
  readonly name: string;
  readonly passwordHash: string;
  readonly allowedDomains: readonly string[];
  /** The stream of its mail when a message does not say (X-Petrel-Stream). */
  readonly defaultStream: 'transactional' | 'marketing';
  readonly createdAt: number;
}

export interface AccountStore {
  /** Throws AccountError PETREL_ACCOUNT_EXISTS when the name is taken. */
  add(
    name: string,
    passwordHash: string,
    allowedDomains: readonly string[],
    defaultStream?: 'transactional' | 'marketing',
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
}

interface AccountRow {
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
    createdAt: row.created_at,
  };
}

export function createAccountStore(db: Db, clock: Clock): AccountStore {
  const insert = db.prepare(
    `INSERT INTO accounts (name, password_hash, allowed_domains, default_stream, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING *`,
  );
  const byName = db.prepare<[string], AccountRow>('SELECT * FROM accounts WHERE name = ?');
  const all = db.prepare<[], AccountRow>('SELECT * FROM accounts ORDER BY name');
  const del = db.prepare('DELETE FROM accounts WHERE name = ?');
  const setHash = db.prepare('UPDATE accounts SET password_hash = ?, updated_at = ? WHERE name = ?');

  return {
    async add(name, passwordHash, allowedDomains, defaultStream = 'transactional') {
      const now = clock.now();
      const row = insert.get(name, passwordHash, JSON.stringify(allowedDomains), defaultStream, now, now) as
        AccountRow | undefined;
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
  };
}
