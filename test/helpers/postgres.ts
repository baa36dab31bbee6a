import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { interopTool } from './interop.js';

/**
 * A throwaway PostgreSQL server from Debian's packages, on a free loopback port in a temporary
 * directory. PostgreSQL refuses to run as root, so as root (CI) initdb and the server run as the
 * `postgres` system user the package creates; otherwise as the current user.
 */
export interface TestPostgres {
  /** postgres://petrel@127.0.0.1:PORT/petrel */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** A URL for another database on the same server (created on first use). */
  database(name: string): Promise<string>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and data. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Whether PostgreSQL's tests can run here (see interopTool: CI requires it). */
export const POSTGRES = interopTool(
  `${postgresBinDir() ?? '/usr/lib/postgresql/15/bin'}/postgres`,
  'postgresql',
);

export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : join(root, versions[0], 'bin');
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const asRoot = userInfo().uid === 0;

/** As root, the postgres user's ids (spawned with them, so that a signal reaches the server itself). */
function serverUser(): { uid: number; gid: number } | object {
  return asRoot ? { uid: Number(idOf('-u')), gid: Number(idOf('-g')) } : {};
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed (bash scripts/install-test-deps.sh)');
  const root = mkdtempSync(join(tmpdir(), 'petrel-pg-'));
  const dataDir = join(root, 'data');
  const user = serverUser();
  if ('uid' in user) chownSync(root, user.uid, user.gid);
  const init = spawnSync(
    join(bin, 'initdb'),
    [
      '-D',
      dataDir,
      '-U',
      'petrel',
      '--auth=trust',
      '-E',
      'UTF8',
      '--locale=C',
      // The throwaway cluster's own files need no fsync; the server's commits keep theirs.
      '--no-sync',
    ],
    { encoding: 'utf8', ...user },
  );
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  let server: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    const args = [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-k',
      root,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'max_connections=200',
      '-c',
      'shared_buffers=32MB',
    ];
    const child = spawn(join(bin, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], ...user });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    server = child;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`postgres exited: ${stderr}`);
      if (await accepting(port)) {
        // The port opens a moment before the server takes connections.
        const ready = spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]);
        if (ready.status === 0) return;
      }
      if (Date.now() > deadline) throw new Error(`postgres did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const exited = async (): Promise<void> => {
    const child = server;
    server = null;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((r) => child.once('exit', () => r()));
  };

  const psql = (sql: string): void => {
    const r = spawnSync(
      join(bin, 'psql'),
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'petrel',
        '-d',
        'postgres',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        sql,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  };

  await start();
  psql('CREATE DATABASE petrel');
  const made = new Set(['petrel']);
  const urlOf = (db: string): string => `postgres://petrel@127.0.0.1:${port}/${db}`;
  return {
    url: urlOf('petrel'),
    port,
    dataDir,
    async database(name) {
      if (!made.has(name)) {
        psql(`CREATE DATABASE "${name}"`);
        made.add(name);
      }
      return urlOf(name);
    },
    async kill() {
      const child = server;
      child?.kill('SIGKILL');
      await exited();
    },
    start,
    async stop() {
      const child = server;
      // SIGINT: fast shutdown, sessions ended, a clean checkpoint.
      child?.kill('SIGINT');
      await exited();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function idOf(flag: '-u' | '-g'): string {
  const r = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('no postgres system user (install Debian postgresql)');
  return r.stdout.trim();
}
