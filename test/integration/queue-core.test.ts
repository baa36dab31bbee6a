import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { openSqlite } from '../../src/spool/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from '../../src/spool/index.js';
import { BIN, type TestDir } from '../helpers/daemon.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

async function submit(port: number, to: string[], subject: string): Promise<string> {
  const c = await RawSmtp.connect(port);
  await c.login('app', 'pw');
  await c.command('MAIL FROM:<sender@example.com>');
  for (const r of to) expect((await c.command(`RCPT TO:<${r}>`)).code).toBe(250);
  const r = await c.data(
    `From: sender@example.com\r\nTo: ${to[0]}\r\nSubject: ${subject}\r\n\r\nHello ${subject}\r\n`,
  );
  c.close();
  expect(r.code).toBe(250);
  return /queued as (\S+)/.exec(r.text)![1]!;
}

const bySubject = (sink: Sink, subject: string) =>
  sink.accepted().filter((m) => m.body.includes(`Subject: ${subject}\r\n`));

/** Runs `petrel serve` to its exit; kills it if it is still running after `timeoutMs`. */
function serveToExit(
  t: TestDir,
  timeoutMs: number,
): Promise<{ status: number | null; stderr: string; stdout: string; killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', t.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr, stdout, killed });
    });
  });
}

describe('the queue core', () => {
  let r: Routed | undefined;
  let spool: Spool | undefined;

  afterEach(async () => {
    await spool?.close();
    await r?.stop();
    spool = r = undefined;
  });

  it('refuses a second serve on a live data dir with one line, and the first delivers its in-flight recipient exactly once', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    r = await startRoutedDaemon({ sink: { dataStart: () => started++, beforeReply: () => gate } });
    const { t, sink, daemon } = r;
    const id = await submit(daemon.ports.submission, ['one@dest.test'], 'held');
    await until('the delivery to be in flight', () => started === 1);

    const second = await serveToExit(t, 20_000);
    expect(second.killed).toBe(false);
    expect(second.status).toBe(1);
    const lines = second.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/data dir .* is in use by another petrel serve/);

    release();
    spool = openSpool(t.dataDir);
    await until(
      'the recipient to be delivered',
      async () => (await spool!.messages.get(id))?.recipients[0]?.state === 'delivered',
    );
    // Delivered is recorded only after the sink answered: a second attempt would have come first.
    expect(bySubject(sink, 'held')).toHaveLength(1);
    expect(daemon.child.exitCode).toBeNull();
  });

  it('delivers a recipient whose outcome could not be recorded once its lease lapses, and leaves nothing in flight', async () => {
    r = await startRoutedDaemon({ toml: '[delivery]\npoll_interval = "200ms"\nlease_time = "2s"' });
    const { t, sink, daemon } = r;
    // A real failure of the outcome's commit, as a full disk or an I/O error would give.
    const db = openSqlite(join(t.dataDir, 'petrel.db'));
    db.exec(`CREATE TRIGGER fail_outcome BEFORE UPDATE OF state ON recipients WHEN NEW.state = 'delivered'
             BEGIN SELECT RAISE(ABORT, 'simulated outcome failure'); END`);
    const id = await submit(daemon.ports.submission, ['one@dest.test'], 'lapsed');
    await until('the first delivery', () => bySubject(sink, 'lapsed').length === 1);
    await until(
      'the holder to give the outcome up',
      () => daemon.logs.some((l) => l.msg.startsWith('outcome not recorded')),
      20_000,
    );
    db.exec('DROP TRIGGER fail_outcome');
    db.close();

    spool = openSpool(t.dataDir);
    await until(
      'the recipient to be delivered',
      async () => (await spool!.messages.get(id))?.recipients[0]?.state === 'delivered',
      20_000,
    );
    // At least once: the delivery whose outcome was lost is made again.
    expect(bySubject(sink, 'lapsed')).toHaveLength(2);
    expect((await spool.queue.counts()).inflight).toBe(0);
  });

  it('commits the bounce record and suppression a 5xx causes with its outcome, so neither is lost', async () => {
    r = await startRoutedDaemon({
      sink: { rcpt: (a) => (a.startsWith('gone@') ? { code: 550, text: '5.1.1 User unknown' } : undefined) },
    });
    const { t, daemon } = r;
    // The bounce record cannot be written: the outcome must not commit without it.
    const db = openSqlite(join(t.dataDir, 'petrel.db'));
    db.exec(
      `CREATE TRIGGER fail_bounce BEFORE INSERT ON bounces BEGIN SELECT RAISE(ABORT, 'simulated failure'); END`,
    );
    const id = await submit(daemon.ports.submission, ['gone@dest.test'], 'gone');
    await until('the outcome commit to be retried', () =>
      daemon.logs.some((l) => l.msg.startsWith('recording an outcome failed')),
    );
    spool = openSpool(t.dataDir);
    expect((await spool.messages.get(id))?.recipients[0]?.state).toBe('inflight');
    db.exec('DROP TRIGGER fail_bounce');
    db.close();
    await until(
      'the recipient to be bounced',
      async () => (await spool!.messages.get(id))?.recipients[0]?.state === 'bounced',
    );
    const entries = await spool.suppressions.find(1, 'gone@dest.test');
    expect(entries.map((e) => [e.scope, e.reason, e.source])).toEqual([['all', 'hard:userunknown', 'smtp']]);
  });

  it('sends mail for another domain within a second while a destination paced to 1 a minute has 5 000 recipients waiting', async () => {
    r = await startRoutedDaemon({
      domains: ['slow.test', 'fast.test'],
      toml: '[delivery.domain."slow.test"]\nrate = "1/min"',
      prepare: async (t) => {
        const backlog = openSpool(t.dataDir);
        for (let m = 0; m < 50; m++) {
          await backlog.messages.insert(backlog.messages.newId(), {
            accountId: null,
            mailFrom: 'sender@example.com',
            recipients: Array.from({ length: 100 }, (_, i) => ({
              address: `r${m}-${i}@slow.test`,
              domain: 'slow.test',
            })),
            headerMessageId: null,
            body: Buffer.from(`From: sender@example.com\r\nSubject: backlog ${m}\r\n\r\nwaiting\r\n`),
            listener: 'submission',
          });
        }
        await backlog.close();
      },
    });
    const { t, sink, daemon } = r;
    await until('the paced destination to get its first message', () =>
      sink.accepted().some((m) => m.rcptTo[0]!.endsWith('@slow.test')),
    );

    const queuedAt = Date.now();
    await submit(daemon.ports.submission, ['someone@fast.test'], 'fast');
    await until('the other domain to get its mail', () => bySubject(sink, 'fast').length === 1, 10_000);
    expect(Date.now() - queuedAt).toBeLessThan(1000);
    spool = openSpool(t.dataDir);
    // The paced destination holds only a short horizon of work, not its backlog.
    expect((await spool.queue.counts()).inflight).toBeLessThanOrEqual(2);
  });
});
