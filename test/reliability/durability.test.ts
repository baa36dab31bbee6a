import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  truncateSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { openSqlite } from '../../src/spool/index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { openSpool, SPOOL_FILE } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { startSink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { recordFigure } from './figures.js';
import { checkFsyncBeforeReply } from './strace-order.js';
import { message, queueIdOf, sendMany, sendOne, TRUSTED_LOOPBACK } from './submit.js';

const CRASH_CYCLES = Number(process.env['PETREL_CRASH_CYCLES'] ?? 30);
const K = 100;
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function trustedDir(extra = ''): TestDir {
  const t = makeTestDir(extra, TRUSTED_LOOPBACK);
  cleanups.push(() => t.cleanup());
  addUser(t, 'loop', ['loop.test'], 'pw');
  return t;
}

async function run(t: TestDir, opts: Parameters<typeof startDaemon>[1] = {}): Promise<Daemon> {
  const d = await startDaemon(t, opts);
  cleanups.push(async () => {
    // Under a wrapper (strace) the logged pid is the daemon itself, which a tracer's death leaves running.
    const pid = d.logs.find((l) => l.msg === 'petrel started')?.['pid'];
    if (opts.wrapper && typeof pid === 'number') {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await d.stop('SIGKILL');
  });
  return d;
}

describe('durability and crash-safety', () => {
  it('case 2: every 250 comes after an fsync of the spool WAL (strace), and the NORMAL-sync control is caught', async () => {
    const t = trustedDir();
    const log = join(t.dir, 'strace.log');
    const trace = [
      'strace',
      '-f',
      '--seccomp-bpf',
      '-qq',
      '-yy',
      '-s',
      '40',
      '-e',
      'trace=read,write,writev,fsync,fdatasync',
      '-o',
      log,
    ];
    const daemon = await run(t, { wrapper: trace });
    const replies = await sendMany(daemon.ports.submission, K, 4, 'fsync');
    expect(replies.filter((r) => r.code === 250)).toHaveLength(K);
    // strace does not pass signals on: stop the traced daemon itself.
    process.kill(Number(daemon.logs.find((l) => l.msg === 'petrel started')!['pid']), 'SIGTERM');
    await daemon.exited;
    const petrel = checkFsyncBeforeReply(log);

    // The control: the same check against a server that keeps better-sqlite3's NORMAL.
    const controlLog = join(t.dir, 'control.log');
    const server = spawn(
      trace[0]!,
      [
        ...trace.slice(1, -1),
        controlLog,
        process.execPath,
        resolve(import.meta.dirname, 'normal-sync-server.mjs'),
        join(t.dir, 'control.db'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => void server.kill('SIGKILL'));
    const [line] = (await once(createInterface({ input: server.stdout! }), 'line')) as [string];
    const [, port, pid] = line.split(' ');
    const controlReplies = await sendMany(Number(port), K, 4, 'control');
    expect(controlReplies.filter((r) => r.code === 250)).toHaveLength(K);
    process.kill(Number(pid), 'SIGTERM');
    await once(server, 'exit');
    const control = checkFsyncBeforeReply(controlLog);

    recordFigure('fsync', { figure: 'fsync', ...petrel, control });
    expect(petrel.transactions).toBe(K);
    expect(petrel.violations).toBe(0);
    expect(control.transactions).toBe(K);
    expect(control.violations).toBeGreaterThan(K / 2);
  }, 120_000);

  it(
    `case 3: loses no acknowledged message over ${CRASH_CYCLES} kill -9 cycles during submission and delivery`,
    () => {
      const out = join(tmpdir(), `petrel-crash-loop-${process.pid}.json`);
      cleanups.push(() => rmSync(out, { force: true }));
      const r = spawnSync(
        process.execPath,
        [resolve(import.meta.dirname, 'crash-loop.mjs'), '--cycles', String(CRASH_CYCLES), '--json', out],
        { encoding: 'utf8', timeout: 40 * 60_000 },
      );
      const result = JSON.parse(readFileSync(out, 'utf8')) as {
        lost: number;
        acknowledged: number;
        killsDuringSubmission: number;
      };
      recordFigure('crash-loop', { figure: 'crash-loop', result });
      console.log(r.stdout.trim());
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      expect(result.acknowledged).toBeGreaterThan(0);
      expect(result.killsDuringSubmission).toBeGreaterThan(0);
      expect(result.lost).toBe(0);
    },
    45 * 60_000,
  );

  it('case 5: a full spool disk (1 MiB tmpfs) gives 452/451 at the final dot, never 250, and recovers intact', async () => {
    const t = trustedDir();
    mkdirSync(t.dataDir, { recursive: true });
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', t.dataDir]);
    expect(mounted.status, `mount tmpfs needs root: ${String(mounted.stderr)}`).toBe(0);
    cleanups.push(() => void spawnSync('umount', ['-l', t.dataDir]));
    // The account lives in the spool: re-create it on the tmpfs.
    addUser(t, 'loop', ['loop.test'], 'pw');
    const daemon = await run(t);
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.command('EHLO client.test');
    expect((await sendOne(c, message('before-full'))).code).toBe(250);

    // Fill what is left of the file system.
    const filler = join(t.dataDir, 'filler');
    const fd = openSync(filler, 'w');
    const block = Buffer.alloc(4096, 1);
    try {
      for (;;) writeFileSync(fd, block);
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      closeSync(fd);
    }
    const full: number[] = [];
    for (let i = 0; i < 5; i++) {
      // About 12 KB, more than a page or two: the WAL must grow.
      full.push((await sendOne(c, message(`while-full-${i}`) + `${'y'.repeat(60)}\r\n`.repeat(200))).code);
    }
    expect(
      full.every((code) => code === 452 || code === 451),
      `replies while full: ${full.join(' ')}`,
    ).toBe(true);

    rmSync(filler);
    const after = await sendOne(c, message('after-full'));
    expect(after.code).toBe(250);
    c.close();
    await daemon.stop();
    const db = openSqlite(join(t.dataDir, SPOOL_FILE), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const subjects = (db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
      expect(subjects).toBe(2);
    } finally {
      db.close();
    }
  });

  it('case 6: an fsync that fails with EIO (fiu-run) gives a 4xx, and the daemon never answers 250 on that handle again', async () => {
    const t = trustedDir();
    const ctrl = join(t.dir, 'fiu');
    const daemon = await run(t, { wrapper: ['fiu-run', '-x', '-f', ctrl] });
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.command('EHLO client.test');
    expect((await sendOne(c, message('before-eio'))).code).toBe(250);

    // SQLite syncs the WAL with fdatasync on Linux; fail both calls from now on.
    const pid = String(daemon.child.pid);
    for (const point of ['posix/io/sync/fdatasync', 'posix/io/sync/fsync']) {
      const r = spawnSync('fiu-ctrl', ['-f', ctrl, '-c', `enable name=${point}`, pid]);
      expect(r.status, String(r.stderr)).toBe(0);
    }
    const failed = await sendOne(c, message('during-eio'));
    expect(failed.code, failed.text).toBeGreaterThanOrEqual(400);
    expect(failed.code).toBeLessThan(500);

    // The storage is healthy again, but the handle that saw the failure must not be trusted.
    for (const point of ['posix/io/sync/fdatasync', 'posix/io/sync/fsync']) {
      spawnSync('fiu-ctrl', ['-f', ctrl, '-c', `disable name=${point}`, pid]);
    }
    const later: number[] = [];
    if (!c.closed) {
      for (let i = 0; i < 3 && !c.closed; i++) later.push((await sendOne(c, message(`after-eio-${i}`))).code);
    }
    const code = await Promise.race([
      daemon.exited,
      new Promise<'alive'>((r) => setTimeout(() => r('alive'), 5000)),
    ]);
    console.log(
      `fsync EIO: ${failed.code} ${failed.text}; afterwards ${later.join(' ') || 'connection closed'}; process ${String(code)}`,
    );
    expect(
      later.includes(250),
      `replies after the failed fsync: ${later.join(' ')}; process: ${String(code)}`,
    ).toBe(false);
    c.close();
  });

  it('case 7: a WAL whose last transaction is torn is recovered without it, and no half message is delivered', async () => {
    const sink = await startSink();
    cleanups.push(() => sink.close());
    const t = trustedDir(`[routes."dest.test"]\nhost = "127.0.0.1"\nport = ${sink.port}\n`);
    // Held while the messages are submitted, so the last transaction in the WAL is the last message.
    const hold = spawnSync(process.execPath, [
      resolve(import.meta.dirname, '../../bin/petrel.js'),
      '--config',
      t.configPath,
      'queue',
      'suspend',
      'dest.test',
    ]);
    expect(hold.status, String(hold.stderr)).toBe(0);
    const daemon = await run(t);
    const replies = await sendMany(daemon.ports.submission, 5, 1, 'torn');
    const ids = replies.map(queueIdOf);
    expect(ids.every(Boolean)).toBe(true);
    daemon.child.kill('SIGKILL');
    await daemon.exited;

    // Cut the last frame of the WAL in half: its transaction's commit frame is then incomplete.
    const wal = join(t.dataDir, `${SPOOL_FILE}-wal`);
    const fd = openSync(wal, 'r');
    const header = Buffer.alloc(32);
    readSync(fd, header, 0, 32, 0);
    const size = fstatSync(fd).size;
    closeSync(fd);
    const pageSize = header.readUInt32BE(8);
    expect(size).toBeGreaterThan(32 + pageSize);
    truncateSync(wal, size - Math.floor(pageSize / 2));

    const spool = openSpool(t.dataDir);
    let present: boolean[];
    try {
      present = await Promise.all(ids.map(async (id) => (await spool.messages.get(id!)) !== null));
      await spool.queue.resume('dest.test');
    } finally {
      await spool.close();
    }
    expect(present.slice(0, -1).every(Boolean)).toBe(true);
    expect(present.at(-1)).toBe(false);
    const restarted = await run(t);
    const delivered = await sink.waitForMessages(4, 20_000);
    await restarted.stop();
    const db = openSqlite(join(t.dataDir, SPOOL_FILE), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      db.close();
    }
    const bodies = delivered.map((m) => m.body.toString('latin1'));
    expect(bodies).toHaveLength(4);
    for (let i = 0; i < 4; i++)
      expect(bodies.some((b) => b.endsWith(message(`torn-${i}`).split('\r\n\r\n')[1]!))).toBe(true);
    expect(bodies.some((b) => b.includes('torn-4'))).toBe(false);
    await until('nothing else delivered', () => sink.messages.length === 4);
  });
});
