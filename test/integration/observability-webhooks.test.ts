import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import {
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  verifySignature,
  type WebhookEvent,
} from '../../src/webhooks/index.js';
import { addUser, cli, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { startSink, type ReceivedMessage, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { arfFor } from '../helpers/reports.js';
import { until } from '../helpers/until.js';

const SECRET = 'test-webhook-secret-0123456789';

interface Request {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly url: string;
  readonly answered: number;
}

/** A webhook receiver on loopback: answers 503 until `up`, then checks and records batches. */
class Receiver {
  up = false;
  readonly requests: Request[] = [];
  readonly events: WebhookEvent[] = [];
  private server: Server | null = null;
  port = 0;

  async listen(port = 0): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const answered = this.up ? 200 : 503;
        this.requests.push({ headers: req.headers, body, url: req.url ?? '', answered });
        if (this.up) this.events.push(...(JSON.parse(body) as { events: WebhookEvent[] }).events);
        res.writeHead(answered).end();
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

describe('webhooks deliver the delivery log durably', () => {
  let sink: Sink;
  let t: TestDir;
  let daemon: Daemon;
  const receiver = new Receiver();
  const deferredOnce = new Set<string>();
  let secretDir = '';

  const send = async (to: string, subject: string, headers: string[] = []): Promise<string> => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    expect((await c.command(`RCPT TO:<${to}>`)).code).toBe(250);
    const r = await c.data(
      [`From: sender@example.com`, `To: ${to}`, `Subject: ${subject}`, ...headers, '', 'hello', ''].join(
        '\r\n',
      ),
    );
    c.close();
    expect(r.code).toBe(250);
    return /queued as (\S+)/.exec(r.text)![1]!;
  };
  const delivered = (subject: string): Promise<ReceivedMessage> =>
    until(subject, () => sink.accepted().find((m) => m.body.includes(`Subject: ${subject}\r\n`)));
  const logged = async (msgId: string, type: string): Promise<void> => {
    const spool = openSpool(t.dataDir);
    try {
      await until(`${type} of ${msgId}`, async () =>
        (await spool.queue.events(msgId)).some((e) => e.type === type),
      );
    } finally {
      await spool.close();
    }
  };

  beforeAll(async () => {
    sink = await startSink({
      rcpt: (a) => {
        if (a.startsWith('bad@')) return { code: 550, text: '5.1.1 User unknown' };
        if (a.startsWith('slow@') && !deferredOnce.has(a)) {
          deferredOnce.add(a);
          return { code: 451, text: '4.7.1 Try again later' };
        }
        return undefined;
      },
    });
    await receiver.listen();
    secretDir = mkdtempSync(join(tmpdir(), 'petrel-hook-'));
    writeFileSync(join(secretDir, 'webhook.secret'), `${SECRET}\n`, { mode: 0o600 });
    t = makeTestDir(`
[delivery]
poll_interval = "100ms"

[delivery.default]
retry = ["300ms"]

[routes."dest.test"]
host = "127.0.0.1"
port = ${sink.port}

[routes."hold.test"]
host = "127.0.0.1"
port = ${sink.port}

[[webhooks]]
url = "http://127.0.0.1:${receiver.port}/hooks/petrel?token=abc"
secret_file = "${join(secretDir, 'webhook.secret')}"
batch_size = 3
max_backoff = "400ms"
poll_interval = "100ms"
`);
    addUser(t, 'app', ['example.com'], 'pw');
    // DSNs to sender@example.com stay queued: no delivery attempts that are not the test's own.
    expect(cli(t, ['queue', 'suspend', 'example.com']).status).toBe(0);
    daemon = await startDaemon(t);
  });

  afterAll(async () => {
    await daemon?.stop();
    await receiver.close();
    await sink?.close();
    t?.cleanup();
    rmSync(secretDir, { recursive: true, force: true });
  });

  it('keeps events while the receiver fails, across a restart, and sends each once, in order and signed, when it is back', async () => {
    // Receiver down (503): deliveries, a deferral and a bounce happen meanwhile.
    const ids = {
      ok: await send('ok@dest.test', 'ok'),
      slow: await send('slow@dest.test', 'slow'),
      bad: await send('bad@dest.test', 'bad'),
      promo: await send('promo@dest.test', 'promo', ['X-Petrel-Stream: marketing']),
      rude: await send('rude@dest.test', 'rude'),
    };
    const promo = await delivered('promo');
    const rude = await delivered('rude');
    await logged(ids.slow, 'delivery');
    await logged(ids.bad, 'bounce');
    await until('failed webhook attempts', () => receiver.requests.length >= 2);
    expect(receiver.events).toHaveLength(0);

    // A complaint and a one-click unsubscribe, still while the receiver is down.
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    await c.command('EHLO isp.test');
    await c.command('MAIL FROM:<>');
    expect((await c.command('RCPT TO:<fbl@bounces.localhost>')).code).toBe(250);
    expect((await c.data(arfFor('rude@dest.test', rude.mailFrom))).code).toBe(250);
    c.close();
    const link = /^List-Unsubscribe: <http:\/\/127\.0\.0\.1:8025(\/u\/[A-Za-z0-9_-]+)>/m.exec(
      promo.body.toString(),
    )![1]!;
    const post = await fetch(`http://127.0.0.1:${daemon.ports.http!}${link}`, {
      method: 'POST',
      body: 'List-Unsubscribe=One-Click',
    });
    expect(post.status).toBe(200);

    // Petrel stops with the backlog unsent; the receiver also goes away (connection refused).
    expect(await daemon.stop()).toBe(0);
    const port = receiver.port;
    await receiver.close();

    // A recipient suppressed between acceptance and delivery: held, suppressed by the CLI, released.
    daemon = await startDaemon(t);
    expect(cli(t, ['queue', 'suspend', 'hold.test']).status).toBe(0);
    const held = await send('held@hold.test', 'held');
    expect(cli(t, ['suppression', 'add', 'held@hold.test', '--reason', 'manual']).status).toBe(0);
    expect(cli(t, ['queue', 'resume', 'hold.test']).status).toBe(0);
    await logged(held, 'suppressed');

    receiver.up = true;
    await receiver.listen(port);

    const spool = openSpool(t.dataDir);
    try {
      const all = await spool.events.after(0, 10_000);
      const wantedTypes = new Set([
        'delivery',
        'transient_failure',
        'bounce',
        'expiration',
        'feedback',
        'unsubscribe',
        'suppressed',
      ]);
      const expected = all.filter((e) => wantedTypes.has(e.type));
      await until('the backlog', () => receiver.events.length >= expected.length, 20_000);
      // Events go out in order: once a later one has arrived, no duplicate of the backlog can follow.
      const marker = await send('marker@dest.test', 'marker');
      await until('the marker', () =>
        receiver.events.some((e) => e.msgId === marker && e.type === 'delivered'),
      );
      expect(receiver.events.filter((e) => e.msgId !== marker).map((e) => e.id)).toEqual(
        expected.map((e) => e.id),
      );
      expect(new Set(receiver.events.map((e) => e.type))).toEqual(
        new Set(['delivered', 'deferred', 'bounced', 'complained', 'unsubscribed', 'suppressed']),
      );
      const byType = (type: string, msgId: string | null): WebhookEvent | undefined =>
        receiver.events.find((e) => e.type === type && (msgId === null || e.msgId === msgId));
      expect(byType('deferred', ids.slow)).toMatchObject({
        recipient: 'slow@dest.test',
        domain: 'dest.test',
        attempt: 1,
        reply: { code: 451 },
      });
      expect(byType('delivered', ids.slow)).toMatchObject({
        logType: 'delivery',
        attempt: 2,
        mx: '127.0.0.1',
        reply: { code: 250 },
      });
      expect(byType('bounced', ids.bad)).toMatchObject({
        recipient: 'bad@dest.test',
        logType: 'bounce',
        reply: { code: 550, enhanced: '5.1.1' },
      });
      expect(byType('complained', ids.rude)).toMatchObject({
        recipient: 'rude@dest.test',
        details: { source: 'fbl', category: 'complaint', feedbackType: 'abuse' },
      });
      expect(byType('unsubscribed', null)).toMatchObject({
        msgId: '',
        recipient: 'promo@dest.test',
        domain: 'dest.test',
        details: { source: 'one-click' },
      });
      expect(byType('suppressed', held)).toMatchObject({
        recipient: 'held@hold.test',
        reply: { code: 550, enhanced: '5.7.1' },
      });
      for (const e of receiver.events) expect(new Date(e.at).getTime()).toBeGreaterThan(0);

      // Every request, failed or not, is signed over its exact body and a fresh timestamp.
      for (const r of receiver.requests) {
        expect(r.url).toBe('/hooks/petrel?token=abc');
        expect(r.headers['content-type']).toBe('application/json');
        const ts = String(r.headers[TIMESTAMP_HEADER]);
        expect(Math.abs(Date.now() / 1000 - Number(ts))).toBeLessThan(120);
        expect(verifySignature(SECRET, ts, r.body, String(r.headers[SIGNATURE_HEADER]))).toBe(true);
        expect(
          verifySignature('another-secret-0123456789', ts, r.body, String(r.headers[SIGNATURE_HEADER])),
        ).toBe(false);
        expect(JSON.parse(r.body).events.length).toBeLessThanOrEqual(3);
      }
      // The cursor is durable: a restart sends nothing again.
      const before = receiver.events.length;
      expect(await daemon.stop()).toBe(0);
      daemon = await startDaemon(t);
      // New events keep flowing, and only they: in order, anything sent again would come first.
      const late = await send('late@dest.test', 'late');
      await until('the late delivery', () =>
        receiver.events.some((e) => e.msgId === late && e.type === 'delivered'),
      );
      expect(receiver.events.slice(before).map((e) => e.msgId)).toEqual([late]);
    } finally {
      await spool.close();
    }
  });
});
