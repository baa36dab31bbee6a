import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from '../../src/spool/index.js';
import {
  openSpool,
  spoolPath,
  type EventStore,
  type NewMessage,
  type PrivacyStore,
  type SuppressionStore,
} from '../../src/spool/index.js';
import { openPgDatabase } from '../../src/spool/pg/db.js';
import { createPgEventStore } from '../../src/spool/pg/events.js';
import { createPgPrivacyStore, type PgPrivacyOptions } from '../../src/spool/pg/privacy.js';
import { createPgSuppressionStore } from '../../src/spool/pg/suppressions.js';
import { pgWriter } from '../../src/spool/pg/writer.js';

/** A clock the test moves. */
export interface TestClock {
  now(): number;
  set(ms: number): void;
  advance(ms: number): void;
}

export function testClock(start = Date.UTC(2026, 0, 1)): TestClock {
  let t = start;
  return { now: () => t, set: (ms) => void (t = ms), advance: (ms) => void (t += ms) };
}

/**
 * The suppression, event and privacy stores of one backend on a fresh database, with the real
 * hot-path insert to give them messages and plain SQL (written with `?`) for the rest.
 */
export interface StoreFixture {
  readonly backend: string;
  readonly clock: TestClock;
  readonly secret: Buffer;
  readonly suppressions: SuppressionStore;
  readonly events: EventStore;
  readonly privacy: PrivacyStore;
  /** Stores a message as submission does; returns its id. */
  insert(message: NewMessage): Promise<string>;
  /** Rows of `sql`, its parameters written `?`; changes for a statement that returns none. */
  sql<R = Record<string, unknown>>(sql: string, ...params: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

export interface StoreBackend {
  readonly name: string;
  /** A fresh database; `secret` replaces the install secret the stores key addresses with. */
  open(options?: { secret?: Buffer; privacy?: PgPrivacyOptions }): Promise<StoreFixture>;
}

let ids = 0;
const newId = (clock: TestClock): string =>
  `${clock.now().toString(36).toUpperCase()}${(ids++).toString(16).padStart(4, '0')}${randomBytes(3).toString('hex')}`;

/**
 * Every Statement of the raw connections, never let go: better-sqlite3 12 on Node 24 aborts the
 * process when the garbage collector finalizes one (src/spool/db.ts).
 */
const kept: unknown[] = [];

export const sqliteBackend: StoreBackend = {
  name: 'sqlite',
  async open(options = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'petrel-stores-'));
    const clock = testClock();
    if (options.secret) {
      // The secret is the database's: set it before the spool reads it.
      await openSpool(dir).close();
      const raw = openSqlite(spoolPath(dir));
      const update = raw.prepare("UPDATE settings SET value = ? WHERE key = 'install_secret'");
      kept.push(update);
      update.run(options.secret);
      raw.close();
    }
    const spool = openSpool(dir, { clock });
    const raw = openSqlite(spoolPath(dir));
    raw.pragma('busy_timeout = 5000');
    return {
      backend: 'sqlite',
      clock,
      secret: spool.secret,
      suppressions: spool.suppressions,
      events: spool.events,
      privacy: spool.privacy,
      async insert(message) {
        const id = spool.messages.newId();
        await spool.messages.insert(id, message);
        return id;
      },
      async sql<R>(sql: string, ...params: unknown[]) {
        const st = raw.prepare(sql);
        kept.push(st);
        return (st.reader ? st.all(...params) : [st.run(...params)]) as R[];
      },
      async close() {
        raw.close();
        await spool.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

/** The PostgreSQL stores on fresh databases of the server at `url` (startPostgres). */
let databases = 0;

export function postgresBackend(database: (name: string) => Promise<string>): StoreBackend {
  return {
    name: 'postgres',
    async open(options = {}) {
      const db = await openPgDatabase(await database(`stores_${databases++}`));
      const clock = testClock();
      const [row] = await db.rows<{ value: Buffer }>(
        "SELECT value FROM settings WHERE key = 'install_secret'",
      );
      const secret = options.secret ?? row!.value;
      const writer = pgWriter(db, () => undefined);
      const suppressions = createPgSuppressionStore(db, secret, clock);
      return {
        backend: 'postgres',
        clock,
        secret,
        suppressions,
        events: createPgEventStore(db, clock),
        privacy: createPgPrivacyStore(db, suppressions, clock, options.privacy),
        async insert(message) {
          const id = newId(clock);
          await writer.run({ op: 'insert', id, message, now: clock.now() });
          return id;
        },
        async sql<R>(sql: string, ...params: unknown[]) {
          let k = 0;
          const text = sql.replace(/\?/g, () => `$${++k}`);
          const r = await db.pool.query(text, params);
          return (r.command === 'SELECT' ? r.rows : [{ changes: r.rowCount }]) as R[];
        },
        async close() {
          await writer.close();
          await db.close();
        },
      };
    },
  };
}
