import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interopTool } from './interop.js';

/** Whether Redis's tests can run here (see interopTool: CI requires it). */
export const REDIS = interopTool('/usr/bin/redis-server', 'redis-server');

/** A redis-server of its own for a test file: loopback, no persistence, in a temporary directory. */
export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** SIGTERM, waits for the exit, removes the directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash): resolves once the process is gone. The directory stays for restart(). */
  kill(): Promise<void>;
  /** Starts a fresh (empty) server on the same port after stop or kill. */
  restart(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing (a hung Redis). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

const REDIS_SERVER = '/usr/bin/redis-server';
const START_TIMEOUT_MS = 5000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Sends PING on a raw connection; true when +PONG comes back. */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      c.destroy();
      resolve(ok);
    };
    c.setTimeout(500, () => done(false));
    c.once('error', () => done(false));
    c.once('connect', () => c.write('PING\r\n'));
    c.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

function exited(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => p.once('exit', () => resolve()));
}

export async function startRedis(): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'petrel-redis-'));
  let port = 0;
  let proc: ChildProcess | null = null;
  let stopped = false;

  const launch = async (): Promise<void> => {
    const p = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc = p;
    let stderr = '';
    p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`redis-server exited (${p.exitCode}): ${stderr.trim()}`);
      if (await pings(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    p.kill('SIGKILL');
    throw new Error('redis-server did not answer PING in time');
  };

  // Another process may take the free port between the probe and the bind: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      if (attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p) return;
    p.kill(signal);
    // A paused server handles SIGTERM only once continued.
    p.kill('SIGCONT');
    await exited(p);
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      await end('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
    kill: () => end('SIGKILL'),
    pause: () => void proc?.kill('SIGSTOP'),
    resume: () => void proc?.kill('SIGCONT'),
    async restart() {
      await end('SIGKILL');
      await launch();
    },
  };
}
