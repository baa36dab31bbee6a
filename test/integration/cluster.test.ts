import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, cli, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { POSTGRES, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { REDIS, startRedis, type TestRedis } from '../helpers/redis.js';
import { routesTo } from '../helpers/routed.js';
import { startSink, type Sink, type SinkScript } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { submitMany as submitAll } from '../helpers/submit.js';

// Several Petrel nodes on one PostgreSQL spool: each node its own data dir (certificate, lock),
// one queue between them.

const submitMany = (port: number, domain: string, count: number, tag: string, sessions = 4) =>
  submitAll(port, domain, count, tag, sessions);

const subjects = (sink: Sink, tag: string): string[] =>
  sink
    .accepted()
    .map((m) => /Subject: (\S+ \d+)\r\n/.exec(m.body.toString())?.[1] ?? '')
    .filter((s) => s.startsWith(`${tag} `));

interface Node {
  readonly t: TestDir;
  daemon: Daemon;
}

describe.skipIf(!POSTGRES.available || !REDIS.available)(
  'a cluster of two nodes on one PostgreSQL spool',
  () => {
    let server: TestPostgres;
    let redis: TestRedis;
    let db: pg.Client;
    let count = 0;
    const nodes: Node[] = [];
    const sinks: Sink[] = [];

    beforeAll(async () => {
      server = await startPostgres();
      redis = await startRedis();
    });
    afterAll(async () => {
      for (const n of nodes) {
        await n.daemon.stop();
        n.t.cleanup();
      }
      for (const s of sinks) await s.close();
      await db?.end();
      await server?.stop();
      await redis?.stop();
    });

    /** A fresh database, an account in it, a sink, and the TOML every node of the test shares. */
    const cluster = async (toml: string, script: SinkScript = {}) => {
      const url = await server.database(`cluster_${++count}`);
      const sink = await startSink(script);
      sinks.push(sink);
      await db?.end();
      db = new pg.Client(url);
      const shared = `[spool]\nurl = "${url}"\n\n${toml}\n\n${routesTo(sink.port, 'dest.test')}`;
      const clusterToml = `[cluster]\nnode_timeout = "2s"\nredis = "${redis.url}"\n`;
      const node = async (name: string, workers = 1): Promise<Node> => {
        const t = makeTestDir(
          `${shared}\n${clusterToml}node = "${name}"\n\n[server]\nworkers = ${workers}\n`,
        );
        const n: Node = { t, daemon: await startDaemon(t) };
        nodes.push(n);
        return n;
      };
      return { url, sink, node };
    };

    it('lets a CLI on any node manage the shared spool, and both nodes (one of two workers) take and deliver mail', async () => {
      const c = await cluster('[delivery]\npoll_interval = "100ms"\n');
      const a = await c.node('node-a');
      addUser(a.t, 'app', ['example.com'], 'pw');
      const b = await c.node('node-b', 2);
      await db.connect();
      // An account added through node a's CLI is seen by node b's.
      expect(cli(b.t, ['user', 'list']).stdout).toMatch(/^app\b/m);
      await submitMany(a.daemon.ports.submission, 'dest.test', 20, 'a', 2);
      await submitMany(b.daemon.ports.submission, 'dest.test', 20, 'b', 2);
      await c.sink.waitForMessages(40, 20_000);
      expect(new Set([...subjects(c.sink, 'a'), ...subjects(c.sink, 'b')]).size).toBe(40);
      const { rows } = await db.query<{ name: string }>('SELECT name FROM nodes ORDER BY name');
      expect(rows.map((r) => r.name)).toEqual(['node-a', 'node-b']);
      const stats = cli(a.t, ['queue', 'stats']);
      expect(stats.status).toBe(0);
      // SQLite's online backup is not PostgreSQL's: one clear line, no stack trace.
      const backup = cli(a.t, ['backup', join(a.t.dir, 'copy.db')]);
      expect(backup.status).toBe(1);
      expect(backup.stderr.trim()).toMatch(
        /^petrel: a PostgreSQL spool is backed up with pg_dump or pg_basebackup, not petrel$/,
      );
      // The doctor checks the shared spool and Redis.
      const doctor = cli(b.t, ['doctor', 'example.com', '--json'])
        .stdout.split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { check: string; status: string; message: string });
      expect(doctor.find((r) => r.check === 'spool')).toMatchObject({
        status: 'ok',
        message: expect.stringMatching(/^postgres, durable \(fsync=on, synchronous_commit=on\), schema \d+$/),
      });
      expect(doctor.find((r) => r.check === 'redis')).toMatchObject({
        status: 'ok',
        message: expect.stringMatching(/^Redis 7\./),
      });
    }, 60_000);

    it('says at start-up, and in the doctor, when PostgreSQL does not flush commits', async () => {
      const c = await cluster('');
      await db.connect();
      await db.query(`ALTER DATABASE ${new URL(c.url).pathname.slice(1)} SET synchronous_commit = off`);
      const a = await c.node('node-lax');
      expect(
        a.daemon.logs.some(
          (l) =>
            l.msg === 'the spool does not flush commits to disk: a crash can lose acknowledged mail' &&
            l['settings'] === 'fsync=on, synchronous_commit=off',
        ),
      ).toBe(true);
      const doctor = cli(a.t, ['doctor', 'example.com', '--json']);
      expect(doctor.status).toBe(1);
      expect(doctor.stdout).toMatch(/"check":"spool","status":"fail".*synchronous_commit=off/);
    }, 30_000);

    it('refuses a second live node under a name already in use', async () => {
      const c = await cluster('');
      const a = await c.node('node-x');
      void a;
      const t = makeTestDir(
        `[spool]\nurl = "${c.url}"\n\n[cluster]\nnode = "node-x"\nnode_timeout = "30s"\n\n[server]\nworkers = 1\n`,
      );
      try {
        await expect(startDaemon(t)).rejects.toThrow(/node name node-x is in use by another live node/);
      } finally {
        t.cleanup();
      }
    }, 30_000);

    it('after SIGKILL of a node holding leases, the other delivers every acknowledged message', async () => {
      let hold = true;
      const c = await cluster(
        '[delivery]\npoll_interval = "100ms"\n\n[delivery.domain."dest.test"]\nmax_connections = 2\nmessages_per_connection = 5\n',
        { beforeReply: () => new Promise((res) => setTimeout(res, hold ? 300 : 0)) },
      );
      const a = await c.node('node-a');
      addUser(a.t, 'app', ['example.com'], 'pw');
      await db.connect();
      await submitMany(a.daemon.ports.submission, 'dest.test', 40, 'kill', 4);
      const held = async (): Promise<number> =>
        Number(
          (
            await db.query<{ n: string }>(
              "SELECT count(*) AS n FROM recipients WHERE state = 'inflight' AND lease_holder LIKE 'node-a:%'",
            )
          ).rows[0]!.n,
        );
      await until('node a holding leases', async () => (await held()) > 0);
      const heldAtKill = await held();
      a.daemon.child.kill('SIGKILL');
      await a.daemon.exited;
      hold = false;
      const b = await c.node('node-b');
      await until(
        'node b took over node a’s leases',
        () => b.daemon.logs.some((l) => l.msg === 'requeued the work of a node that stopped heartbeating'),
        20_000,
      );
      await until(
        'every acknowledged message delivered',
        () => new Set(subjects(c.sink, 'kill')).size === 40,
        30_000,
      );
      // A message node a had sent without recording it may go again (never lost); no other twice.
      expect(subjects(c.sink, 'kill').length - 40).toBeLessThanOrEqual(heldAtKill);
      expect(await held()).toBe(0);
    }, 90_000);

    /** Two nodes (a and b) on one database and one Redis, with the account made through a's CLI. */
    const twoNodes = async (toml: string, script: SinkScript = {}) => {
      const c = await cluster(`[delivery]\npoll_interval = "100ms"\n\n${toml}`, script);
      const a = await c.node('node-a');
      addUser(a.t, 'app', ['example.com'], 'pw');
      const b = await c.node('node-b');
      await db.connect();
      return { ...c, a, b };
    };
    const deliverers = (ns: readonly Node[]) =>
      ns.filter((n) => n.daemon.logs.some((l) => l['event'] === 'delivery')).length;

    it('keeps max_connections = 2 across both nodes over 300 messages', async () => {
      const c = await twoNodes(
        `[delivery.domain."dest.test"]\nmax_connections = 2\nmessages_per_connection = 10\n`,
        { beforeReply: () => new Promise((res) => setTimeout(res, 2)) },
      );
      void redis;
      await Promise.all([
        submitMany(c.a.daemon.ports.submission, 'dest.test', 150, 'conn-a', 4),
        submitMany(c.b.daemon.ports.submission, 'dest.test', 150, 'conn-b', 4),
      ]);
      await c.sink.waitForMessages(300, 60_000);
      expect(new Set([...subjects(c.sink, 'conn-a'), ...subjects(c.sink, 'conn-b')]).size).toBe(300);
      expect(c.sink.maxConcurrent).toBeLessThanOrEqual(2);
      expect(deliverers([c.a, c.b])).toBe(2);
    }, 90_000);

    it('keeps rate = 600/min across both nodes within 10%', async () => {
      const times: number[] = [];
      const c = await twoNodes(`[delivery.domain."dest.test"]\nrate = "600/min"\nmax_connections = 4\n`, {
        data: () => {
          times.push(Date.now());
          return undefined;
        },
      });
      await Promise.all([
        submitMany(c.a.daemon.ports.submission, 'dest.test', 20, 'rate-a', 2),
        submitMany(c.b.daemon.ports.submission, 'dest.test', 20, 'rate-b', 2),
      ]);
      await c.sink.waitForMessages(40, 30_000);
      const perSecond = ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!);
      expect(perSecond).toBeLessThan(11);
      expect(perSecond).toBeGreaterThan(8);
      expect(deliverers([c.a, c.b])).toBe(2);
    }, 60_000);

    it('loses no mail when Redis dies mid-run, keeps per-node limits meanwhile, and says so', async () => {
      const c = await twoNodes(
        `[delivery.domain."dest.test"]\nmax_connections = 2\nmessages_per_connection = 5\n`,
        {
          beforeReply: () => new Promise((res) => setTimeout(res, 5)),
        },
      );
      const first = submitMany(c.a.daemon.ports.submission, 'dest.test', 60, 'redis-a', 3);
      await until('deliveries under way', () => c.sink.messages.length > 5);
      await redis.kill();
      await until('node a reports the shared limits degraded', async () => {
        const text = await (await fetch(`http://127.0.0.1:${c.a.daemon.ports.http}/metrics`)).text();
        return /^petrel_shaping_degraded 1$/m.test(text);
      });
      await first;
      await submitMany(c.b.daemon.ports.submission, 'dest.test', 60, 'redis-b', 3);
      await until(
        'every acknowledged message delivered',
        () => new Set([...subjects(c.sink, 'redis-a'), ...subjects(c.sink, 'redis-b')]).size === 120,
        60_000,
      );
      const degraded = [c.a, c.b].filter((n) =>
        n.daemon.logs.some((l) => l['component'] === 'shaping' && l.level === 'warn'),
      );
      expect(degraded.length).toBeGreaterThan(0);
      // Per node: 2 connections divided by the two nodes seen last, so one each, two in all.
      expect(c.sink.maxConcurrent).toBeLessThanOrEqual(2);
      await redis.restart();
    }, 90_000);

    it('dispatches each webhook receiver from one node at a time, in id order, once, and fails over', async () => {
      const got: { id: number; type: string }[] = [];
      const receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          got.push(...(JSON.parse(body) as { events: { id: number; type: string }[] }).events);
          res.end('ok');
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      const port = (receiver.address() as AddressInfo).port;
      const secretDir = mkdtempSync(join(tmpdir(), 'petrel-hook-'));
      writeFileSync(join(secretDir, 'secret'), 'a-webhook-secret-of-some-length\n', { mode: 0o600 });
      try {
        const c = await twoNodes(
          `[[webhooks]]\nurl = "http://127.0.0.1:${port}/hook"\nsecret_file = "${join(secretDir, 'secret')}"\nbatch_size = 5\npoll_interval = "100ms"\n`,
        );
        await submitMany(c.a.daemon.ports.submission, 'dest.test', 15, 'hook-a', 2);
        await submitMany(c.b.daemon.ports.submission, 'dest.test', 15, 'hook-b', 2);
        await until(
          '30 deliveries reported',
          () => got.filter((e) => e.type === 'delivered').length >= 30,
          20_000,
        );
        const ids = got.map((e) => e.id);
        expect(ids).toEqual([...ids].sort((x, y) => x - y));
        expect(new Set(ids).size).toBe(ids.length);
        // The node that dispatches dies: the other takes the receiver over and goes on from the cursor.
        const dispatchers = [c.a, c.b].filter((n) =>
          n.daemon.logs.some((l) => l.msg === 'dispatching to this webhook receiver from this node'),
        );
        expect(dispatchers).toHaveLength(1);
        const dispatcher = dispatchers[0]!;
        const other = dispatcher === c.a ? c.b : c.a;
        dispatcher.daemon.child.kill('SIGKILL');
        await dispatcher.daemon.exited;
        await submitMany(other.daemon.ports.submission, 'dest.test', 10, 'hook-c', 2);
        await until(
          'the later deliveries reported',
          () => got.filter((e) => e.type === 'delivered').length >= 40,
          20_000,
        );
        const after = got.map((e) => e.id);
        // At least once: the batch in flight at the kill may come twice, from the new node,
        // starting again at the cursor; apart from that one batch, every id comes once, in order.
        const firsts = after.filter((id, i) => after.indexOf(id) === i);
        expect(firsts).toEqual([...firsts].sort((x, y) => x - y));
        const again = after.filter((id, i) => after.indexOf(id) !== i);
        expect(again.length).toBeLessThanOrEqual(5);
        expect(again).toEqual([...again].sort((x, y) => x - y));
        if (again.length > 0) {
          const resent = after.indexOf(again[0]!, after.indexOf(again[0]!) + 1);
          expect(after.slice(resent, resent + again.length)).toEqual(again);
        }
        const { rows } = await db.query<{ id: number }>(
          "SELECT id FROM events WHERE type = 'delivery' ORDER BY id",
        );
        const seen = new Set(after);
        expect(rows.map((r) => Number(r.id)).filter((id) => !seen.has(id))).toEqual([]);
      } finally {
        receiver.close();
        rmSync(secretDir, { recursive: true, force: true });
      }
    }, 90_000);

    it('erases an address while both nodes deliver, leaving nothing of it in the shared spool', async () => {
      const c = await twoNodes('', { beforeReply: () => new Promise((res) => setTimeout(res, 5)) });
      const victim = 'erase-me@dest.test';
      const submitVictim = async (port: number, n: number) => {
        const cl = await RawSmtp.connect(port);
        await cl.login('app', 'pw');
        for (let i = 0; i < n; i++) {
          await cl.command('MAIL FROM:<sender@example.com>');
          await cl.command(`RCPT TO:<${victim}>`);
          await cl.command(`RCPT TO:<other${i}@dest.test>`);
          expect(
            (await cl.data(`From: sender@example.com\r\nSubject: victim ${i}\r\n\r\nHello ${victim}\r\n`))
              .code,
          ).toBe(250);
        }
        cl.close();
      };
      await Promise.all([
        submitVictim(c.a.daemon.ports.submission, 10),
        submitVictim(c.b.daemon.ports.submission, 10),
        submitMany(c.a.daemon.ports.submission, 'dest.test', 30, 'bg-a', 2),
        submitMany(c.b.daemon.ports.submission, 'dest.test', 30, 'bg-b', 2),
      ]);
      const erase = cli(c.b.t, ['privacy', 'erase', victim]);
      expect(erase.status, erase.stderr).toBe(0);
      const left = await db.query(
        `SELECT 'messages' AS t FROM messages WHERE position($1 in convert_from(body, 'UTF8')) > 0 OR lower(mail_from) = $1
       UNION ALL SELECT 'recipients' FROM recipients WHERE lower(rcpt_to) = $1
       UNION ALL SELECT 'events' FROM events WHERE position($1 in lower(coalesce(details, ''))) > 0
       UNION ALL SELECT 'mentions' FROM messages WHERE mentions @> ARRAY[$1::text]`,
        [victim],
      );
      expect(left.rows).toEqual([]);
      // Everyone else's mail still goes out.
      await until(
        'the background mail delivered',
        () => new Set([...subjects(c.sink, 'bg-a'), ...subjects(c.sink, 'bg-b')]).size === 60,
        30_000,
      );
    }, 90_000);

    it('acknowledges only what PostgreSQL committed: a server killed mid-run loses no 250, and the node carries on', async () => {
      const c = await cluster('[delivery]\npoll_interval = "100ms"\n');
      const a = await c.node('node-pg');
      addUser(a.t, 'app', ['example.com'], 'pw');
      await db.connect();
      await db.end();
      const acked: string[] = [];
      let refused = 0;
      let stop = false;
      const load = (async () => {
        for (let i = 0; !stop && i < 400; i++) {
          try {
            const cl = await RawSmtp.connect(a.daemon.ports.submission);
            try {
              if ((await cl.command('EHLO x')).code !== 250) continue;
              await cl.login('app', 'pw');
              await cl.command('MAIL FROM:<sender@example.com>');
              await cl.command(`RCPT TO:<r${i}@dest.test>`);
              const r = await cl.data(`From: sender@example.com\r\nSubject: pgkill ${i}\r\n\r\nbody\r\n`);
              if (r.code === 250) acked.push(`pgkill ${i}`);
              else refused++;
            } finally {
              cl.close();
            }
          } catch {
            refused++;
          }
        }
      })();
      await until('some mail acknowledged', () => acked.length >= 10, 20_000);
      await server.kill();
      const ackedAtKill = acked.length;
      await new Promise((r) => setTimeout(r, 1500));
      await server.start();
      await until(
        'mail acknowledged again after the restart',
        () => acked.length >= ackedAtKill + 10,
        30_000,
      );
      stop = true;
      await load;
      expect(refused).toBeGreaterThan(0);
      // Every acknowledged message reaches the sink: none was lost with the server.
      await until(
        'every acknowledged message delivered',
        () => {
          const got = new Set(subjects(c.sink, 'pgkill'));
          return acked.every((s) => got.has(s));
        },
        30_000,
      );
      expect(a.daemon.child.exitCode).toBeNull();
      db = new pg.Client(c.url);
    }, 120_000);
  },
);
