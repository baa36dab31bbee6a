import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookEvent } from '../../src/webhooks/index.js';
import {
  addUser,
  makeTestDir,
  startDaemon,
  type Daemon,
  type LogLine,
  type TestDir,
} from '../helpers/daemon.js';
import { dsnFor } from '../helpers/reports.js';
import { routesTo } from '../helpers/routed.js';
import { startSink, type ReceivedMessage, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

/** A webhook receiver on loopback that acknowledges every batch and keeps its events. */
class Receiver {
  readonly events: WebhookEvent[] = [];
  private server: Server | null = null;
  url = '';

  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.events.push(
          ...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: WebhookEvent[] }).events,
        );
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

interface Settings {
  logLevel: string;
  maxRecipients: number;
  softBounceLimit: number;
  retentionBodies: string;
  webhook: string;
}

describe('SIGHUP applies each reloadable setting where it is used', () => {
  let sink: Sink;
  let t: TestDir;
  let daemon: Daemon;
  let base = '';
  let secretFile = '';
  const first = new Receiver();
  const second = new Receiver();
  const settings: Settings = {
    logLevel: 'info',
    maxRecipients: 100,
    softBounceLimit: 3,
    retentionBodies: '7d',
    webhook: '',
  };

  const render = (s: Settings): string =>
    `${base
      .replace('log_level = "debug"', `log_level = "${s.logLevel}"`)
      .replace('[submission]\n', `[submission]\nmax_recipients = ${s.maxRecipients}\n`)}
[delivery]
poll_interval = "200ms"

${routesTo(sink.port, 'dest.test')}
[suppression]
soft_bounce_limit = ${s.softBounceLimit}

[retention]
bodies = "${s.retentionBodies}"

[[webhooks]]
url = "${s.webhook}"
secret_file = ${JSON.stringify(secretFile)}
poll_interval = "100ms"
`;

  /** Rewrites the config, sends SIGHUP and waits for the reload; returns where its log lines start. */
  const reload = async (change: Partial<Settings>): Promise<number> => {
    Object.assign(settings, change);
    writeFileSync(t.configPath, render(settings));
    const from = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    await until('the reload', () =>
      daemon.logs.slice(from).some((l) => l.msg.startsWith('configuration reloaded')),
    );
    return from;
  };

  const logged = (
    what: string,
    from: number,
    match: (l: LogLine) => boolean,
    timeoutMs?: number,
  ): Promise<LogLine> => until(what, () => daemon.logs.slice(from).find(match), timeoutMs);

  const send = async (to: string, subject: string): Promise<{ code: number; msgId: string }> => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) {
      c.close();
      return { code: rcpt.code, msgId: '' };
    }
    const r = await c.data(`From: sender@example.com\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\nhello\r\n`);
    c.close();
    return { code: r.code, msgId: /queued as (\S+)/.exec(r.text)?.[1] ?? '' };
  };

  const deliver = async (
    to: string,
    subject: string,
  ): Promise<{ msgId: string; message: ReceivedMessage }> => {
    const { code, msgId } = await send(to, subject);
    expect(code).toBe(250);
    const message = await until(subject, () =>
      sink.accepted().find((m) => m.body.includes(`Subject: ${subject}\r\n`)),
    );
    return { msgId, message };
  };

  const report = async (rcptTo: string, message: string): Promise<number> => {
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    await c.command('EHLO mx.dest.test');
    await c.command('MAIL FROM:<>');
    const rcpt = await c.command(`RCPT TO:<${rcptTo}>`);
    const code = rcpt.code === 250 ? (await c.data(message)).code : rcpt.code;
    c.close();
    return code;
  };

  beforeAll(async () => {
    sink = await startSink();
    await first.listen();
    await second.listen();
    t = makeTestDir();
    base = readFileSync(t.configPath, 'utf8');
    secretFile = join(t.dir, 'webhook-secret');
    writeFileSync(secretFile, 'reload-webhook-secret-0123456789\n');
    settings.webhook = first.url;
    writeFileSync(t.configPath, render(settings));
    addUser(t, 'app', ['example.com'], 'pw');
    daemon = await startDaemon(t);
  });

  afterAll(async () => {
    await daemon?.stop();
    await sink?.close();
    await first.close();
    await second.close();
    t?.cleanup();
  });

  it('applies a new soft-bounce limit to the next report the inbound listener reads', async () => {
    const { message } = await deliver('full@dest.test', 'mailbox full');
    const dsn = dsnFor('full@dest.test', message.mailFrom, '4.2.2', '452 4.2.2 Mailbox full');
    let from = daemon.logs.length;
    expect(await report(message.mailFrom, dsn)).toBe(250);
    const before = await logged('the first report', from, (l) => l.msg === 'bounce received');
    expect(before).toMatchObject({ category: 'soft', suppressed: false });

    // Two soft bounces now suppress; the file said three.
    await reload({ softBounceLimit: 2 });
    from = daemon.logs.length;
    expect(await report(message.mailFrom, dsn)).toBe(250);
    const after = await logged('the second report', from, (l) => l.msg === 'bounce received');
    expect(after).toMatchObject({ category: 'soft', suppressed: true });
    expect((await send('full@dest.test', 'refused')).code).toBe(550);
  });

  it('sends events to the receiver a reload names, starting after the latest event', async () => {
    const early = await deliver('hook1@dest.test', 'before the new receiver');
    await until('the first receiver', () =>
      first.events.find((e) => e.msgId === early.msgId && e.type === 'delivered'),
    );

    const from = await reload({ webhook: second.url });
    await logged(
      'the new receiver',
      from,
      (l) => l.msg === 'new webhook receiver starts after the latest event' && l['webhook'] === second.url,
    );
    const late = await deliver('hook2@dest.test', 'after the new receiver');
    await until('the second receiver', () =>
      second.events.find((e) => e.msgId === late.msgId && e.type === 'delivered'),
    );
    // The old receiver was dropped before the message was sent; the new one starts at the present.
    expect(first.events.some((e) => e.msgId === late.msgId)).toBe(false);
    expect(second.events.some((e) => e.msgId === early.msgId)).toBe(false);
  });

  it('logs at a new log_level in every component', async () => {
    // Every delivery so far went through the queue at info: none of its debug lines.
    expect(daemon.logs.some((l) => l.level === 'debug')).toBe(false);
    const from = await reload({ logLevel: 'debug' });
    const { msgId } = await deliver('debug@dest.test', 'at debug');
    await logged(
      'a debug line from the queue',
      from,
      (l) => l.msg === 'attempt finished' && l['msgId'] === msgId,
    );
  });

  it('names each restart-only setting that changed, and says when nothing reloadable did', async () => {
    const from = await reload({ maxRecipients: 150 });
    const lines = daemon.logs.slice(from);
    expect(lines.filter((l) => l.level === 'warn' && l['key'] === 'submission.max_recipients')).toHaveLength(
      1,
    );
    expect(lines.filter((l) => l.level === 'warn').map((l) => l['key'])).toEqual([
      'submission.max_recipients',
    ]);
    expect(lines.some((l) => l.msg === 'configuration reloaded; nothing reloadable changed')).toBe(true);
  });

  it('restarts the retention sweep with the new settings', async () => {
    const { msgId } = await deliver('old@dest.test', 'kept a week');
    await logged('the delivery', 0, (l) => l['event'] === 'delivery' && l['msgId'] === msgId);
    // Bodies of finished messages now go after a second instead of a week.
    const from = await reload({ retentionBodies: '1s' });
    const sweep = await logged('a sweep', from, (l) => l.msg === 'retention sweep', 20_000);
    expect(sweep['bodies']).toBeGreaterThanOrEqual(1);
  });
});

describe('--log-level on the command line', () => {
  let t: TestDir;
  let daemon: Daemon;

  beforeAll(async () => {
    t = makeTestDir();
    daemon = await startDaemon(t, { args: ['--log-level', 'info'] });
  });

  afterAll(async () => {
    await daemon?.stop();
    t?.cleanup();
  });

  it('still wins over log_level in the file after a reload', async () => {
    // The file says debug from the start; the flag said info.
    const from = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    const done = await until('the reload', () =>
      daemon.logs.slice(from).find((l) => l.msg.startsWith('configuration reloaded')),
    );
    expect(done.msg).toBe('configuration reloaded; nothing reloadable changed');
    expect(daemon.logs.some((l) => l.level === 'debug')).toBe(false);
  });
});
