import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { openSqlite } from '../../src/spool/index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

async function status(daemon: Daemon, path: string): Promise<number> {
  return (await fetch(`http://127.0.0.1:${daemon.ports.http!}${path}`)).status;
}

/** Writes until the filesystem refuses (ENOSPC), in big chunks and then page-sized ones. */
/** One message from a trusted address, its body padded to about `bytes`; the reply to its final dot. */
async function submit(daemon: Daemon, n: number, bytes = 0): Promise<number> {
  const c = await RawSmtp.connect(daemon.ports.submission);
  await c.command('EHLO client.test');
  await c.command('MAIL FROM:<app@example.com>');
  await c.command('RCPT TO:<rcpt@dest.test>');
  await c.command('DATA');
  const padding = `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(bytes / 78));
  const reply = await c.command(
    `From: app@example.com\r\nTo: rcpt@dest.test\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n${padding}.`,
  );
  c.close();
  return reply.code;
}

function fill(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Mounting needs root with CAP_SYS_ADMIN (CI runs so); elsewhere that case is skipped. */
function canMount(): { ok: boolean; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not root: cannot mount a small tmpfs to fill' };
  const probe = makeTestDir();
  try {
    mkdirSync(probe.dataDir);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe.dataDir], {
      encoding: 'utf8',
    });
    if (r.status !== 0)
      return { ok: false, reason: `mount -t tmpfs refused: ${(r.stderr || r.error?.message || '').trim()}` };
    spawnSync('umount', [probe.dataDir]);
    return { ok: true, reason: '' };
  } finally {
    probe.cleanup();
  }
}

const mountable = canMount();

describe('/readyz follows whether the database can be written', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it.skipIf(!mountable.ok)(
    `fails with 503 when the disk is full, and recovers when space returns${mountable.ok ? '' : ` (skipped: ${mountable.reason})`}`,
    async () => {
      const t: TestDir = makeTestDir('', 'trusted_networks = ["127.0.0.0/8"]\ntrusted_account = "app"');
      cleanups.push(() => t.cleanup());
      mkdirSync(t.dataDir);
      // Root ignores file modes, so a full filesystem is the honest way to make writes fail.
      expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0750', 'tmpfs', t.dataDir]).status).toBe(
        0,
      );
      cleanups.push(() => void spawnSync('umount', ['-l', t.dataDir]));
      addUser(t, 'app', ['example.com']);
      const daemon = await startDaemon(t);
      expect(await submit(daemon, 1)).toBe(250);
      cleanups.push(async () => void (await daemon.stop()));
      expect(await status(daemon, '/readyz')).toBe(200);

      // An empty WAL must grow for the next commit, so the write probe needs new space.
      const spool = openSpool(t.dataDir);
      await spool.checkpoint();
      await spool.close();
      const filler = join(t.dataDir, 'filler');
      fill(filler);

      await until('readyz 503', async () => (await status(daemon, '/readyz')) === 503);
      expect(await status(daemon, '/healthz')).toBe(200);
      // The commit fails on the writer thread; the client is told to try again, nothing is lost.
      expect(await submit(daemon, 2)).toBe(452);
      expect(daemon.child.exitCode).toBeNull();

      rmSync(filler);
      await until('readyz 200 again', async () => (await status(daemon, '/readyz')) === 200);
      expect(await submit(daemon, 3)).toBe(250);
    },
  );

  it.skipIf(!mountable.ok)(
    `fails with 503 while mail is refused for want of space, though its own tiny write still fits${mountable.ok ? '' : ` (skipped: ${mountable.reason})`}`,
    async () => {
      const t: TestDir = makeTestDir('', 'trusted_networks = ["127.0.0.0/8"]\ntrusted_account = "app"');
      cleanups.push(() => t.cleanup());
      mkdirSync(t.dataDir);
      expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0750', 'tmpfs', t.dataDir]).status).toBe(
        0,
      );
      cleanups.push(() => void spawnSync('umount', ['-l', t.dataDir]));
      addUser(t, 'app', ['example.com']);
      const daemon = await startDaemon(t);
      cleanups.push(async () => void (await daemon.stop()));
      expect(await submit(daemon, 1, 1 << 20)).toBe(250);

      // A checkpoint that keeps the WAL file's size: later commits reuse it from its start, so a
      // small write still fits once the disk is full, and only a bigger one needs new space.
      const db = openSqlite(join(t.dataDir, 'petrel.db'));
      expect(db.pragma('wal_checkpoint(RESTART)')).toMatchObject([{ busy: 0 }]);
      db.close();
      const filler = join(t.dataDir, 'filler');
      fill(filler);

      expect(await submit(daemon, 2, 2 << 20)).toBe(452);
      expect(await status(daemon, '/readyz')).toBe(503);
      expect(await status(daemon, '/readyz')).toBe(503);

      rmSync(filler);
      await until('readyz 200 again', async () => (await status(daemon, '/readyz')) === 200);
      expect(await submit(daemon, 3)).toBe(250);
    },
  );

  it('fails with 503 while another process holds the database write lock', async () => {
    const t: TestDir = makeTestDir();
    cleanups.push(() => t.cleanup());
    const daemon = await startDaemon(t);
    cleanups.push(async () => void (await daemon.stop()));
    expect(await status(daemon, '/readyz')).toBe(200);

    const db = openSqlite(join(t.dataDir, 'petrel.db'));
    db.pragma('journal_mode = WAL');
    db.prepare('BEGIN IMMEDIATE').run();
    try {
      // The probe waits out the spool's busy timeout (5 s) before it reports.
      expect(await status(daemon, '/readyz')).toBe(503);
    } finally {
      db.prepare('ROLLBACK').run();
      db.close();
    }
    expect(await status(daemon, '/readyz')).toBe(200);
  }, 20_000);
});
