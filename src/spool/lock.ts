import { join } from 'node:path';
import { type Db, openSqlite } from './db.js';
import { SpoolError, errorMessage, makeDirectory } from '../shared/index.js';

export const LOCK_FILE = 'petrel.lock';

/** Proof that this process owns the data dir's queue; released by `release()` or by its death. */
export interface DataDirLock {
  readonly path: string;
  /**
   * The data dir's own id (random, made on its first lock, kept in the lock file): an instance
   * of a node that holds this lock knows every earlier instance with the same id is dead.
   */
  readonly id: string;
  release(): void;
}

/**
 * Takes the data dir for one daemon. SQLite's own POSIX lock on a dedicated file, held by an
 * open exclusive transaction: the kernel drops it when the process dies however it dies, so a
 * lock can never outlive its owner, and a second daemon (or a second app in the same process)
 * is refused at once. The spool itself stays open to the CLI.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  let db: Db;
  try {
    makeDirectory(dataDir, 0o750);
    db = openSqlite(path, { timeout: 0 });
  } catch (err) {
    throw new SpoolError('PETREL_SPOOL_UNAVAILABLE', `cannot open lock file ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  let id: string;
  try {
    // Before the exclusive lock, in a transaction of its own: two starts at once make one id.
    db.exec(
      `CREATE TABLE IF NOT EXISTS ident (id TEXT NOT NULL);
       INSERT INTO ident (id) SELECT lower(hex(randomblob(6))) WHERE NOT EXISTS (SELECT 1 FROM ident)`,
    );
    const select = db.prepare('SELECT id FROM ident LIMIT 1');
    id = (select.get() as { id: string }).id;
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    const busy = (err as { code?: string }).code === 'SQLITE_BUSY';
    throw new SpoolError(
      busy ? 'PETREL_SPOOL_LOCKED' : 'PETREL_SPOOL_UNAVAILABLE',
      busy
        ? `data dir ${dataDir} is in use by another petrel serve (lock held on ${path})`
        : `cannot lock data dir ${dataDir}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  let held = true;
  return {
    path,
    id,
    release() {
      if (!held) return;
      held = false;
      db.close();
    },
  };
}
