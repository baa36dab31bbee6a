import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectSpool, type Spool, type SpoolOptions } from '../../src/spool/index.js';
import { POSTGRES, startPostgres, type TestPostgres } from './postgres.js';

/**
 * The spool backends the contract tests run against: the same test, the same expectations.
 * `open` gives a fresh, empty spool each time (a new data dir; a new PostgreSQL database on one
 * shared server); `reopen` opens another connection to the last one (a CLI beside the daemon).
 */
export interface SpoolBackend {
  readonly name: 'sqlite' | 'postgres';
  open(options?: SpoolOptions): Promise<Spool>;
  reopen(options?: SpoolOptions): Promise<Spool>;
  /** Closes every spool it opened and removes what it made. */
  cleanup(): Promise<void>;
  /** Stops the server (postgres), after every test of the file. */
  shutdown(): Promise<void>;
}

export function sqliteBackend(): SpoolBackend {
  const dirs: string[] = [];
  const open: Spool[] = [];
  const openAt = async (dir: string, options?: SpoolOptions): Promise<Spool> => {
    const s = await connectSpool({ dataDir: dir, url: '' }, options);
    open.push(s);
    return s;
  };
  return {
    name: 'sqlite',
    async open(options) {
      const dir = mkdtempSync(join(tmpdir(), 'petrel-contract-'));
      dirs.push(dir);
      return openAt(dir, options);
    },
    reopen: (options) => openAt(dirs.at(-1)!, options),
    async cleanup() {
      for (const s of open.splice(0)) await s.close();
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
    async shutdown() {},
  };
}

export function postgresBackend(): SpoolBackend {
  let server: TestPostgres | null = null;
  let count = 0;
  let last = '';
  const open: Spool[] = [];
  const openAt = async (url: string, options?: SpoolOptions): Promise<Spool> => {
    const s = await connectSpool({ dataDir: '', url }, options);
    open.push(s);
    return s;
  };
  return {
    name: 'postgres',
    async open(options) {
      server ??= await startPostgres();
      last = await server.database(`contract_${++count}`);
      return openAt(last, options);
    },
    reopen: (options) => openAt(last, options),
    async cleanup() {
      for (const s of open.splice(0)) await s.close();
    },
    async shutdown() {
      await server?.stop();
      server = null;
    },
  };
}

/** SQLite always; PostgreSQL where it is installed (always in CI). */
export const backends = (): SpoolBackend[] =>
  POSTGRES.available ? [sqliteBackend(), postgresBackend()] : [sqliteBackend()];
