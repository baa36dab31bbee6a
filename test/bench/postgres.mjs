// A throwaway PostgreSQL server for the benchmarks, like test/helpers/postgres.ts: Debian's
// binaries, a free loopback port, a data directory in the bench's temporary directory. As root
// (PostgreSQL refuses to run as root) initdb and the server run with the `postgres` user's ids,
// spawned directly so that the server's process tree is the postmaster's and can be measured.
// Durable as in production: fsync and synchronous_commit stay on (initdb's own files skip fsync).
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, openSync, closeSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, run, waitExit, waitForPort } from './lib.mjs';

/** The newest installed server's bin directory, or null. */
export function postgresBinDir() {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : join(root, versions[0], 'bin');
}

function serverUser() {
  if (process.getuid?.() !== 0) return {};
  const id = (flag) => {
    const r = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error("no postgres system user: install Debian's postgresql package");
    return Number(r.stdout.trim());
  };
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * Starts a server in `dir` (an empty directory the caller removes) and resolves once it takes
 * connections. Returns its postmaster's pid, a URL per database (`database(name)` creates one),
 * `sql()` for one statement and `stop()` (fast shutdown).
 */
export async function startPostgres({ dir }) {
  const bin = postgresBinDir();
  if (!bin) throw new Error("PostgreSQL is not installed: install Debian's postgresql package");
  const user = serverUser();
  if ('uid' in user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const init = spawnSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'petrel', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { encoding: 'utf8', ...user },
  );
  if (init.status !== 0) throw new Error(`initdb failed: ${(init.stderr || init.stdout).trim()}`);
  const port = await freePort();
  const logPath = join(dir, 'postgres.log');
  const log = openSync(logPath, 'a');
  if ('uid' in user) chownSync(logPath, user.uid, user.gid);
  const child = spawn(
    join(bin, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      // PETREL_BENCH_PG_STATEMENTS=FILE: which statements the database spends its time on.
      ...(process.env.PETREL_BENCH_PG_STATEMENTS
        ? ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track=all']
        : []),
    ],
    { stdio: ['ignore', log, log], ...user },
  );
  closeSync(log);
  const psqlArgs = ['-h', '127.0.0.1', '-p', String(port), '-U', 'petrel', '-d', 'postgres', '-X', '-q'];
  const sql = (statement) =>
    run(join(bin, 'psql'), [...psqlArgs, '-v', 'ON_ERROR_STOP=1', '-c', statement], { timeoutMs: 60_000 });
  try {
    await waitForPort(port, 20_000);
    // The port opens a moment before the server takes connections.
    for (let i = 0; ; i++) {
      if (spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]).status === 0) break;
      if (i >= 400 || child.exitCode !== null) throw new Error('pg_isready never answered');
      await sleep(50);
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`PostgreSQL did not start (log: ${logPath}): ${err.message}`);
  }
  const version = (await run(join(bin, 'postgres'), ['--version'])).stdout.trim();
  return {
    pid: child.pid,
    port,
    logPath,
    version,
    url: (db) => `postgres://petrel@127.0.0.1:${port}/${db}`,
    sql,
    async database(name) {
      await sql(`CREATE DATABASE "${name}"`);
      return `postgres://petrel@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      const file = process.env.PETREL_BENCH_PG_STATEMENTS;
      if (file) {
        await sql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
        const r = await run(join(bin, 'psql'), [
          ...psqlArgs,
          '-c',
          `SELECT calls, round(total_exec_time) AS ms, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40`,
        ]);
        writeFileSync(file, r.stdout);
      }
      // SIGINT: fast shutdown (sessions ended, a clean checkpoint).
      child.kill('SIGINT');
      return waitExit(child, 30_000);
    },
  };
}
