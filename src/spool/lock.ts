import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SpoolError, errorMessage, makeDirectory } from '../shared/index.js';

export const LOCK_FILE = 'petrel.lock';

/** Proof that this process owns the data dir's queue; released by `release()` or by its death. */
export interface DataDirLock {
  readonly path: string;
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
  let db: Database.Database;
  try {
    makeDirectory(dataDir, 0o750);
    db = new Database(path, { timeout: 0 });
  } catch (err) {
    throw new SpoolError('PETREL_SPOOL_UNAVAILABLE', `cannot open lock file ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  try {
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
    release() {
      if (!held) return;
      held = false;
      db.close();
    },
  };
}
