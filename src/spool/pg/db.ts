import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { SpoolError, errorMessage } from '../../shared/index.js';
import { PG_MIGRATIONS } from './migrations.js';

/** A value bound to a statement parameter. */
export type PgValue =
  string | number | bigint | boolean | Buffer | null | readonly (string | number | Buffer | null)[];

/** One connection's query function (a pooled client inside a transaction, or the pool). */
export interface PgQuery {
  /** With `name`, a statement the connection prepares once and reuses (hot paths). */
  rows<R>(sql: string, params?: readonly PgValue[], name?: string): Promise<R[]>;
  /** Rows changed (UPDATE, DELETE, INSERT). */
  run(sql: string, params?: readonly PgValue[]): Promise<number>;
}

export interface PgDb extends PgQuery {
  readonly pool: pg.Pool;
  /** Runs `work` in one transaction on one pooled connection; rolls back when it throws. */
  tx<T>(work: (q: PgQuery) => Promise<T>): Promise<T>;
  /** A connection of its own, outside the pool (the writer, LISTEN). */
  client(): Promise<pg.Client>;
  close(): Promise<void>;
}

/** Millisecond times and row ids fit well within 2^53: read BIGINT and counts as numbers. */
const types = {
  getTypeParser(oid: number, format?: string): (value: string) => unknown {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text') as (value: string) => unknown;
  },
};

const MIGRATION_LOCK = 0x70657472; // "petr"

/**
 * Pooled connections per process, for reads and the CLI's writes; a worker also keeps one for
 * its writer, one for LISTEN and one for cluster jobs (README: Running a cluster).
 */
const POOL_SIZE = 6;

function queryOf(target: pg.Pool | pg.ClientBase): PgQuery {
  return {
    async rows<R>(sql: string, params: readonly PgValue[] = [], name?: string) {
      const values = params as unknown[];
      const r =
        name === undefined
          ? await target.query(sql, values)
          : await target.query({ name, text: sql, values });
      return r.rows as R[];
    },
    async run(sql: string, params: readonly PgValue[] = []) {
      return (await target.query(sql, params as unknown[])).rowCount ?? 0;
    },
  };
}

/** Where the URL points, without its password, for messages. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** `begin`: BEGIN, or BEGIN with more parameterless statements sent in the same round trip. */
export async function transaction<T>(
  client: pg.ClientBase,
  work: (q: PgQuery) => Promise<T>,
  begin = 'BEGIN',
): Promise<T> {
  await client.query(begin);
  try {
    const value = await work(queryOf(client));
    await client.query('COMMIT');
    return value;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Connects to the PostgreSQL spool, checks that its commits are durable, and applies pending
 * migrations. Throws SpoolError PETREL_SPOOL_UNAVAILABLE with one line when it cannot.
 */
export async function openPgDatabase(url: string, options: { poolSize?: number } = {}): Promise<PgDb> {
  const config: pg.PoolConfig = {
    connectionString: url,
    max: options.poolSize ?? POOL_SIZE,
    types,
    application_name: 'petrel',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  };
  const pool = new pg.Pool(config);
  // An idle client that loses its server (restart) must not crash the process.
  pool.on('error', () => undefined);
  try {
    const client = await pool.connect();
    try {
      await migrate(client);
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new SpoolError(
      'PETREL_SPOOL_UNAVAILABLE',
      `cannot open spool ${describeUrl(url)}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  const q = queryOf(pool);
  return {
    pool,
    rows: q.rows,
    run: q.run,
    async tx(work) {
      const client = await pool.connect();
      try {
        return await transaction(client, work);
      } finally {
        client.release();
      }
    },
    async client() {
      const client = new pg.Client({ connectionString: url, types, application_name: 'petrel' });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    },
    async close() {
      await pool.end();
    },
  };
}

async function migrate(client: pg.PoolClient): Promise<void> {
  for (;;) {
    const done = await transaction(client, async (q) => {
      await q.run('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await q.run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL)');
      const [row] = await q.rows<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
      const current = row?.v ?? 0;
      if (current > PG_MIGRATIONS.length) {
        throw new Error(`schema version ${current} is newer than this Petrel (${PG_MIGRATIONS.length})`);
      }
      if (current === PG_MIGRATIONS.length) return true;
      await q.run(PG_MIGRATIONS[current]!);
      await q.run('INSERT INTO schema_migrations (version) VALUES ($1)', [current + 1]);
      if (current === 0) {
        await q.run(
          "INSERT INTO settings (key, value) VALUES ('install_secret', $1) ON CONFLICT DO NOTHING",
          [randomBytes(32)],
        );
      }
      return false;
    });
    if (done) return;
  }
}

/** SQLSTATE classes that mean the server or the connection failed, not the statement. */
export function isConnectionFailure(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return true;
  return /^(08|57P|53|58)/.test(code) || code === 'ECONNREFUSED' || code === 'ECONNRESET';
}

/** True when the server's disk is full (SQLSTATE 53100). */
export function isDiskFull(err: unknown): boolean {
  return (err as { code?: unknown }).code === '53100';
}
