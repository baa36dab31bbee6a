import { openSqlite } from '../../src/spool/index.js';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, makeTestDir, startDaemon, type LogLine } from '../helpers/daemon.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { Sink, SinkScript } from '../helpers/sink.js';
import { until } from '../helpers/until.js';
import { submitMany as submitAll } from '../helpers/submit.js';

/**
 * Submits `count` messages, one recipient each at `domain`, over `sessions` parallel sessions.
 * The node's primary hands connections to its workers in turn, so each worker gets some.
 */
const submitMany = (port: number, domain: string, count: number, tag: string, sessions = 4) =>
  submitAll(port, domain, count, tag, sessions);

const subjects = (sink: Sink, tag: string): string[] =>
  sink
    .accepted()
    .map((m) => /Subject: (\S+ \d+)\r\n/.exec(m.body.toString())?.[1] ?? '')
    .filter((s) => s.startsWith(`${tag} `));

const workerLines = (logs: readonly LogLine[], msg: string): Set<unknown> =>
  new Set(logs.filter((l) => l.msg === msg && l['worker'] !== undefined).map((l) => l['worker']));

describe('a node of two workers', () => {
  const running: Routed[] = [];
  afterAll(async () => {
    for (const r of running) await r.stop();
  });
  const start = async (toml: string, sink: SinkScript = {}) => {
    const r = await startRoutedDaemon({
      domains: ['shaped.test'],
      toml: `[server]\nworkers = 2\n\n[delivery]\npoll_interval = "100ms"\n\n${toml}`,
      sink,
    });
    running.push(r);
    return r;
  };

  it('starts two workers that both serve, and sums their metrics on any scrape', async () => {
    const r = await start('');
    expect(workerLines(r.daemon.logs, 'worker started')).toEqual(new Set([1, 2]));
    // One connection after another: the primary hands each to the next worker in turn.
    for (let i = 0; i < 20; i++)
      await submitMany(r.daemon.ports.submission, 'shaped.test', 1, `metrics${i}`, 1);
    await r.sink.waitForMessages(20, 20_000);
    // Both workers took mail: each logs its own receptions.
    const receivers = new Set(
      r.daemon.logs.filter((l) => l['event'] === 'reception').map((l) => l['worker']),
    );
    expect(receivers).toEqual(new Set([1, 2]));
    await until('the outcomes counted', async () => {
      const text = await (await fetch(`http://127.0.0.1:${r.daemon.ports.http}/metrics`)).text();
      return /petrel_recipient_outcomes_total\{outcome="delivered"\} 20\b/.test(text) ? text : null;
    }).then((text) => {
      expect(text).toMatch(/petrel_messages_received_total\{listener="submission"\} 20\b/);
      expect(text).toMatch(/^process_cpu_seconds_total \d/m);
      // Read from the shared database: once, not summed over the workers.
      const bytes = Number(/^petrel_spool_bytes (\d+)/m.exec(text)?.[1]);
      const files = ['petrel.db', 'petrel.db-wal', 'petrel.db-shm']
        .map((f) => join(r.t.dataDir, f))
        .filter((f) => existsSync(f))
        .reduce((n, f) => n + statSync(f).size, 0);
      expect(bytes).toBeGreaterThan(0);
      expect(bytes).toBeLessThan(1.5 * files);
    });
  });

  it('keeps max_connections = 2 for the node over 500 messages', async () => {
    const r = await start(
      '[delivery.domain."shaped.test"]\nmax_connections = 2\nmessages_per_connection = 20\n',
      // Slow enough that both workers hold sessions at the same time.
      { beforeReply: () => new Promise((res) => setTimeout(res, 2)) },
    );
    await submitMany(r.daemon.ports.submission, 'shaped.test', 500, 'conn', 8);
    await r.sink.waitForMessages(500, 60_000);
    expect(new Set(subjects(r.sink, 'conn')).size).toBe(500);
    expect(r.sink.maxConcurrent).toBeLessThanOrEqual(2);
    // Both workers delivered: the limit was shared, not met by one worker doing all the work.
    const deliverers = new Set(
      r.daemon.logs.filter((l) => l['event'] === 'delivery').map((l) => l['worker']),
    );
    expect(deliverers).toEqual(new Set([1, 2]));
  }, 90_000);

  it('keeps rate = 600/min for the node within 10%', async () => {
    const times: number[] = [];
    const r = await start('[delivery.domain."shaped.test"]\nrate = "600/min"\nmax_connections = 4\n', {
      data: () => {
        times.push(Date.now());
        return undefined;
      },
    });
    await submitMany(r.daemon.ports.submission, 'shaped.test', 40, 'rate', 4);
    await r.sink.waitForMessages(40, 30_000);
    const perSecond = ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!);
    // The limit is a ceiling: never 10% above it. A busy machine can only make the node slower,
    // never faster, so below it the bound is looser.
    expect(perSecond).toBeLessThan(11);
    expect(perSecond).toBeGreaterThan(8);
    const deliverers = new Set(
      r.daemon.logs.filter((l) => l['event'] === 'delivery').map((l) => l['worker']),
    );
    expect(deliverers).toEqual(new Set([1, 2]));
  }, 60_000);

  it('after SIGKILL of one worker mid-delivery, restarts it and delivers everything, twice only what it held', async () => {
    let hold = true;
    const r = await start(
      '[delivery.domain."shaped.test"]\nmax_connections = 4\nmessages_per_connection = 5\n',
      {
        // Replies slowly while held, so the kill lands with deliveries in flight.
        beforeReply: () => new Promise((res) => setTimeout(res, hold ? 200 : 0)),
      },
    );
    await submitMany(r.daemon.ports.submission, 'shaped.test', 60, 'kill', 4);
    const started = r.daemon.logs.filter((l) => l.msg === 'worker started');
    const victim = started.find((l) => l['worker'] === 1)!;
    const holder = String(victim['holder']);
    // It holds leases: some of its deliveries are under way.
    const db = openSqlite(join(r.t.dataDir, 'petrel.db'), { readonly: true });
    try {
      const leased = (): number =>
        (
          db
            .prepare("SELECT count(*) AS n FROM recipients WHERE state = 'inflight' AND lease_holder = ?")
            .get(holder) as { n: number }
        ).n;
      await until('worker 1 holding leases', () => leased() > 0);
      const heldAtKill = leased();
      process.kill(Number(victim['pid']), 'SIGKILL');
      await until('the primary requeued its leases', () =>
        r.daemon.logs.some((l) => l.msg === 'worker exited; restarting it' && l['worker'] === 1),
      );
      hold = false;
      await until(
        'worker 1 restarted',
        () => r.daemon.logs.filter((l) => l.msg === 'worker started' && l['worker'] === 1).length === 2,
        20_000,
      );
      await until(
        'every acknowledged message delivered',
        () => new Set(subjects(r.sink, 'kill')).size === 60,
        30_000,
      );
      const all = subjects(r.sink, 'kill');
      // A message the dead worker had sent without recording it goes again (RFC 5321 allows a
      // duplicate, never a loss); no other message is sent twice.
      expect(all.length - 60).toBeLessThanOrEqual(heldAtKill);
      expect(leased()).toBe(0);
    } finally {
      db.close();
    }
  }, 90_000);

  it('reloads every worker on SIGHUP, and drains every worker on SIGTERM', async () => {
    const r = await start('[delivery.domain."shaped.test"]\nmax_connections = 1\n', {
      beforeReply: () => new Promise((res) => setTimeout(res, 100)),
    });
    const toml = readFileSync(r.t.configPath, 'utf8');
    writeFileSync(r.t.configPath, toml.replace('max_connections = 1', 'max_connections = 3'));
    r.daemon.child.kill('SIGHUP');
    await until(
      'both workers reloaded',
      () => workerLines(r.daemon.logs, 'configuration reloaded').size === 2,
    );
    expect(
      r.daemon.logs
        .filter((l) => l.msg === 'configuration reloaded')
        .every((l) =>
          ((l['keys'] as string[] | undefined) ?? []).some((k) => k.startsWith('delivery.domain')),
        ),
    ).toBe(true);

    await submitMany(r.daemon.ports.submission, 'shaped.test', 30, 'drain', 3);
    await until('deliveries under way', () => r.sink.messages.length > 0);
    const code = await r.daemon.stop('SIGTERM');
    expect(code).toBe(0);
    expect(workerLines(r.daemon.logs, 'stopped')).toEqual(new Set([1, 2]));
    expect(r.daemon.logs.some((l) => l.msg === 'stopped' && l['worker'] === undefined)).toBe(true);
    // Nothing is left leased, and the data dir is free for the next serve.
    const db = openSqlite(join(r.t.dataDir, 'petrel.db'), { readonly: true });
    try {
      const inflight = db.prepare("SELECT count(*) AS n FROM recipients WHERE state = 'inflight'").get() as {
        n: number;
      };
      expect(inflight.n).toBe(0);
    } finally {
      db.close();
    }
    const again = await startDaemon(r.t);
    r.daemon = again;
    await until(
      'the rest delivered after the restart',
      () => new Set(subjects(r.sink, 'drain')).size === 30,
      30_000,
    );
  }, 90_000);

  it('takes every worker down with a primary killed with SIGKILL, at start-up as well as serving', async () => {
    const t = makeTestDir('[server]\nworkers = 2\n');
    // Processes still running with this config: the primary and its workers.
    const ours = (): number[] =>
      readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
          try {
            return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(t.configPath);
          } catch {
            return false;
          }
        })
        .map(Number);
    try {
      for (const delay of [50, 350, 450, 550, 650, 750, 900, 3000]) {
        const child = spawn(process.execPath, [BIN, 'serve', '--config', t.configPath], { stdio: 'ignore' });
        await new Promise((res) => setTimeout(res, delay));
        if (delay === 3000) expect(ours().length).toBe(3);
        child.kill('SIGKILL');
        await until(`no worker left after a kill at ${delay} ms`, () => ours().length === 0, 10_000);
      }
    } finally {
      for (const pid of ours()) process.kill(pid, 'SIGKILL');
      t.cleanup();
    }
  }, 60_000);
});
