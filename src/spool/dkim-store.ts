import type { Clock } from '../shared/index.js';
import type { Db } from './db.js';

/** A DKIM key's record; the private key itself stays in a file only the daemon can read. */
export interface DkimKeyRecord {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: 'rsa' | 'ed25519';
  readonly privateKeyPath: string;
  /**
   * The private key sealed with the spool key (sealKey), for a spool shared by several nodes;
   * null when it is in the file at privateKeyPath.
   */
  readonly sealedKey: Buffer | null;
  /** The base64 public key, as published in the `p=` tag. */
  readonly publicKey: string;
  readonly active: boolean;
  readonly createdAt: number;
}

export interface DkimKeyStore {
  /**
   * Records a new key and makes it the active one for its domain and algorithm (the previous
   * one stays listed, inactive, so its DNS record can be kept until mail signed with it is old).
   * Returns false when the domain already has that selector.
   */
  add(
    key: Omit<DkimKeyRecord, 'active' | 'createdAt' | 'sealedKey'> & { sealedKey?: Buffer | null },
  ): Promise<boolean>;
  list(): Promise<DkimKeyRecord[]>;
  active(): Promise<DkimKeyRecord[]>;
}

interface Row {
  domain: string;
  selector: string;
  algorithm: 'rsa' | 'ed25519';
  private_key_path: string;
  sealed_key: Buffer | null;
  public_key: string;
  active: number;
  created_at: number;
}

const toRecord = (r: Row): DkimKeyRecord => ({
  domain: r.domain,
  selector: r.selector,
  algorithm: r.algorithm,
  privateKeyPath: r.private_key_path,
  sealedKey: r.sealed_key ?? null,
  publicKey: r.public_key,
  active: r.active === 1,
  createdAt: r.created_at,
});

export function createDkimKeyStore(db: Db, clock: Clock): DkimKeyStore {
  const deactivate = db.prepare('UPDATE dkim_keys SET active = 0 WHERE domain = ? AND algorithm = ?');
  const insert = db.prepare(
    `INSERT INTO dkim_keys (domain, selector, algorithm, private_key_path, public_key, active, created_at, sealed_key)
     VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT(domain, selector) DO NOTHING`,
  );
  const all = db.prepare<[], Row>('SELECT * FROM dkim_keys ORDER BY domain, created_at');
  const activeRows = db.prepare<[], Row>(
    'SELECT * FROM dkim_keys WHERE active = 1 ORDER BY domain, algorithm',
  );
  const addTx = db.transaction((k: Parameters<DkimKeyStore['add']>[0]): boolean => {
    const exists = db
      .prepare('SELECT 1 FROM dkim_keys WHERE domain = ? AND selector = ?')
      .get(k.domain, k.selector);
    if (exists) return false;
    deactivate.run(k.domain, k.algorithm);
    insert.run(
      k.domain,
      k.selector,
      k.algorithm,
      k.privateKeyPath,
      k.publicKey,
      clock.now(),
      k.sealedKey ?? null,
    );
    return true;
  });
  return {
    async add(key) {
      return addTx.immediate(key);
    },
    async list() {
      return all.all().map(toRecord);
    },
    async active() {
      return activeRows.all().map(toRecord);
    },
  };
}
