import { chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import Database, { type Statement } from 'better-sqlite3';
import { SpoolError, errorMessage, makeDirectory } from '../shared/index.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/**
 * Every connection and statement of this process, kept for the life of the process.
 * better-sqlite3 12 wraps its objects in node::ObjectWrap, whose destructor on Node 24 aborts the
 * process when the garbage collector finalizes one outside a JS context
 * (`RemoveEnvironmentCleanupHook … (env) != nullptr`, seen under load); 13 fixes it but needs
 * Node 22. So no Database, Statement or iterator may ever become garbage: connections are opened
 * only through openSqlite, each SQL text is prepared once per connection and reused, PRAGMAs go
 * through the same cache (db.pragma prepares anew), iterate() reads all rows at once (each call
 * makes an iterator object), and backup() is refused (it makes a Backup object; use VACUUM INTO).
 */
const kept = new Map<Db, Map<string, Statement<unknown[]>>>();

/** Opens a SQLite connection whose native objects are never collected (see `kept`). */
export function openSqlite(path: string, options?: Database.Options): Db {
  const db = new Database(path, options);
  const cache = new Map<string, Statement<unknown[]>>();
  kept.set(db, cache);
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    let statement = cache.get(sql);
    if (!statement) {
      statement = prepare(sql) as Statement<unknown[]>;
      const all = statement.all.bind(statement);
      statement.iterate = ((...params: unknown[]) =>
        all(...params)[Symbol.iterator]()) as Statement['iterate'];
      cache.set(sql, statement);
    }
    return statement;
  }) as Db['prepare'];
  db.pragma = ((source: string, options?: Database.PragmaOptions) =>
    options?.simple ? pragma(db, source) : pragma(db, source, true)) as Db['pragma'];
  db.backup = (() => {
    throw new Error('backup() would make a native object that must not be collected; use VACUUM INTO');
  }) as Db['backup'];
  return db;
}

/** A PRAGMA's first value (its rows with `all`), through the connection's kept statements. */
export function pragma(db: Db, source: string): unknown;
export function pragma(db: Db, source: string, all: true): unknown[];
export function pragma(db: Db, source: string, all = false): unknown {
  const statement = db.prepare(`PRAGMA ${source}`);
  if (!statement.reader) {
    statement.run();
    return all ? [] : undefined;
  }
  if (all) return statement.all();
  const row = statement.get() as Record<string, unknown> | undefined;
  return row === undefined ? undefined : Object.values(row)[0];
}

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
    db = openSqlite(path, {
      readonly: options.readonly ?? false,
      fileMustExist: options.readonly ?? false,
    });
  } catch (err) {
    throw new SpoolError('PETREL_SPOOL_UNAVAILABLE', `cannot open spool ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  try {
    if (!options.readonly) pragma(db, 'journal_mode = WAL');
    pragma(db, 'synchronous = FULL');
    pragma(db, 'secure_delete = ON');
    pragma(db, 'foreign_keys = ON');
    pragma(db, 'busy_timeout = 5000');
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
  const current = pragma(db, 'user_version') as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`schema version ${current} is newer than this Petrel (${MIGRATIONS.length})`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      // Another process (a CLI command next to the daemon) may have migrated meanwhile.
      if ((pragma(db, 'user_version') as number) > version) return;
      db.exec(MIGRATIONS[version]!);
      db.exec(`PRAGMA user_version = ${version + 1}`);
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
