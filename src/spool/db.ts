import { chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { SpoolError, errorMessage, makeDirectory } from '../shared/index.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/**
 * Opens the spool database with the durability and privacy settings every connection needs:
 * WAL with synchronous=FULL (better-sqlite3's WAL default is NORMAL, which can lose a committed
 * transaction on power loss) and secure_delete (deleted rows are overwritten, not left readable).
 * Applies pending migrations.
 */
export function openDatabase(path: string, options: { readonly?: boolean } = {}): Db {
  let db: Db;
  try {
    if (!options.readonly) makeDirectory(dirname(path), 0o750);
    db = new Database(path, {
      readonly: options.readonly ?? false,
      fileMustExist: options.readonly ?? false,
    });
  } catch (err) {
    throw new SpoolError('PETREL_SPOOL_UNAVAILABLE', `cannot open spool ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  try {
    if (!options.readonly) db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('secure_delete = ON');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    if (!options.readonly) {
      // The spool holds personal data: owner only. SQLite gives -wal and -shm the same mode.
      chmodSync(path, 0o600);
      migrate(db);
    }
  } catch (err) {
    db.close();
    throw new SpoolError('PETREL_SPOOL_UNAVAILABLE', `cannot prepare spool ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`schema version ${current} is newer than this Petrel (${MIGRATIONS.length})`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      // Another process (a CLI command next to the daemon) may have migrated meanwhile.
      if ((db.pragma('user_version', { simple: true }) as number) > version) return;
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}

/** True for SQLite errors that mean the storage itself failed (fsync EIO, corruption). */
export function isStorageFailure(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^SQLITE_(IOERR|CORRUPT|NOTADB|CANTOPEN|READONLY)/.test(code);
}

/** True when the disk or database is full; the write may succeed later. */
export function isStorageFull(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_FULL';
}
