import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSpool, type Spool } from '../../src/spool/index.js';
import { POSTGRES, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { SinkScript } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

/** Submits one message as `app`; returns its queue id. */
async function submit(port: number, from: string, to: string[], subject: string): Promise<string> {
  const c = await RawSmtp.connect(port);
  await c.login('app', 'pw');
  await c.command(`MAIL FROM:<${from}>`);
  for (const r of to) expect((await c.command(`RCPT TO:<${r}>`)).code).toBe(250);
  const r = await c.data(`From: ${from}\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n\r\nHello\r\n`);
  c.close();
  expect(r.code).toBe(250);
  return /queued as (\S+)/.exec(r.text)![1]!;
}

const messageIdOf = (body: Buffer): string => /^Message-ID: (\S+)\r$/im.exec(body.toString('latin1'))![1]!;

/**
 * A daemon routed to a sink, retrying every 250 ms, and a spool connection beside it; the spool
 * is PostgreSQL's at `url` when given.
 */
async function start(
  delayWarning: string,
  sink: SinkScript,
  url = '',
): Promise<{ routed: Routed; spool: Spool }> {
  const routed = await startRoutedDaemon({
    domains: ['dest.test', 'example.com'],
    toml:
      (url ? `[spool]\nurl = "${url}"\n\n` : '') +
      `[delivery]\npoll_interval = "100ms"\ndelay_warning = "${delayWarning}"\n\n[delivery.default]\nretry = ["250ms"]\n`,
    sink,
  });
  return { routed, spool: await connectSpool({ dataDir: routed.t.dataDir, url }) };
}

/**
 * Every DSN about queue id `id`, delivered or still queued, by Message-ID. The queue is read
 * before the sink: a DSN delivered in between is then in the sink.
 */
async function dsnsAbout(r: Routed, spool: Spool, id: string): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for (const e of await spool.queue.list({ domain: 'example.com', limit: 1000 })) {
    const m = await spool.messages.get(e.messageId);
    if (m && m.mailFrom === '' && m.body.includes(id)) found.set(messageIdOf(m.body), m.body);
  }
  for (const m of r.sink.messages)
    if (m.mailFrom === '' && m.body.includes(id)) found.set(messageIdOf(m.body), m.body);
  return found;
}

async function deferrals(spool: Spool, id: string) {
  return (await spool.events.tail(1000, id)).filter((e) => e.type === 'transient_failure');
}

describe.each([
  { backend: 'sqlite', skip: false },
  { backend: 'postgres', skip: !POSTGRES.available },
])('delay notices with delay_warning = "1s" on $backend', ({ backend, skip }) => {
  let routed: Routed;
  let spool: Spool;
  let server: TestPostgres | undefined;
  let slowAccepts = false;

  beforeAll(async () => {
    if (skip) return;
    let url = '';
    if (backend === 'postgres') {
      server = await startPostgres();
      url = await server.database('delay_notice');
    }
    ({ routed, spool } = await start(
      '1s',
      {
        rcpt: (address) => {
          if (address === 'slow@dest.test' && !slowAccepts) return { code: 451, text: '4.2.1 Mailbox busy' };
          if (address === 'unknown@dest.test') return { code: 550, text: '5.1.1 User unknown' };
          if (address === 'unreachable@example.com') return { code: 451, text: '4.4.1 Try again later' };
          return undefined;
        },
      },
      url,
    ));
  });

  afterAll(async () => {
    await spool?.close();
    await routed?.stop();
    await server?.stop();
  });

  it.skipIf(skip)(
    'tells the sender once that a deferred recipient is delayed, and never again, not even when it is delivered',
    async () => {
      const id = await submit(
        routed.daemon.ports.submission,
        'sender@example.com',
        ['slow@dest.test', 'fast@dest.test'],
        'slow mail',
      );
      const [notice] = await until('the delay notice', async () => {
        const d = await dsnsAbout(routed, spool, id);
        return d.size > 0 && [...d.values()];
      });
      const delivered = await until('the notice delivered', () =>
        routed.sink.messages.find((m) => m.mailFrom === '' && m.body.includes(id)),
      );
      expect(delivered.rcptTo).toEqual(['sender@example.com']);
      const parsed = await simpleParser(notice!);
      expect(parsed.subject).toBe('Delayed Mail (still being retried)');
      expect(parsed.headers.get('content-type')).toMatchObject({
        value: 'multipart/report',
        params: { 'report-type': 'delivery-status' },
      });
      // mailparser folds the message/delivery-status part into the text.
      const status = parsed.text ?? '';
      expect(status).toContain('Final-Recipient: rfc822; slow@dest.test\nAction: delayed\nStatus: 4.2.1');
      expect(status).not.toContain('fast@dest.test');
      expect(status).toContain('Diagnostic-Code: smtp; 451 4.2.1 Mailbox busy');
      const arrival = Date.parse(/^Arrival-Date: (.+)$/m.exec(status)![1]!);
      const retryUntil = Date.parse(/^Will-Retry-Until: (.+)$/m.exec(status)![1]!);
      expect(retryUntil - arrival).toBe(3 * 86_400_000);
      const headers = parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers');
      expect(headers?.content.toString()).toContain('Subject: slow mail\r\n');
      expect(headers?.content.toString()).toContain('From: sender@example.com\r\n');

      // Retried several times more, past the warning: still one notice.
      const seen = (await deferrals(spool, id)).length;
      await until('more retries', async () => (await deferrals(spool, id)).length >= seen + 4);
      expect((await dsnsAbout(routed, spool, id)).size).toBe(1);
      const marked = (await deferrals(spool, id)).filter((e) => e.details?.['delayNotice'] === true);
      expect(marked).toHaveLength(1);
      expect(routed.daemon.logs.filter((l) => l['msgId'] === id && l['delayNotice'] === true)).toHaveLength(
        1,
      );

      // A DSN commits with the outcome that owes it: once the delivery is recorded, none can follow.
      slowAccepts = true;
      await until('the delivery', async () =>
        (await spool.events.tail(1000, id)).some(
          (e) => e.type === 'delivery' && e.domain === 'dest.test' && e.attempt! > 1,
        ),
      );
      expect((await spool.messages.get(id))!.recipients.map((r) => r.state)).toEqual([
        'delivered',
        'delivered',
      ]);
      expect((await dsnsAbout(routed, spool, id)).size).toBe(1);
    },
  );

  it.skipIf(skip)('never warns of a delayed message with a null sender, such as a DSN', async () => {
    const id = await submit(
      routed.daemon.ports.submission,
      'unreachable@example.com',
      ['unknown@dest.test'],
      'to nobody',
    );
    // The failure DSN goes to unreachable@example.com, which defers it time after time.
    const [dsn] = await until('the failure DSN', async () => {
      for (const e of await spool.queue.list({ domain: 'example.com', limit: 1000 })) {
        const m = await spool.messages.get(e.messageId);
        if (m && m.mailFrom === '' && m.body.includes(id)) return [m];
      }
      return null;
    });
    expect(dsn!.body.toString()).toContain('Action: failed');
    await until(
      'retries of the DSN past delay_warning',
      async () => {
        const d = await deferrals(spool, dsn!.id);
        return d.length >= 4 && d.at(-1)!.at - dsn!.receivedAt > 1500;
      },
      15_000,
    );
    expect((await deferrals(spool, dsn!.id)).filter((e) => e.details?.['delayNotice'] === true)).toHaveLength(
      0,
    );
    expect(routed.daemon.logs.filter((l) => l['msgId'] === dsn!.id && l['delayNotice'])).toHaveLength(0);
    expect((await dsnsAbout(routed, spool, dsn!.id)).size).toBe(0);
  });
});

describe('delay notices with delay_warning = ""', () => {
  let routed: Routed;
  let spool: Spool;

  beforeAll(async () => {
    ({ routed, spool } = await start('', {
      rcpt: (address) =>
        address === 'slow@dest.test' ? { code: 451, text: '4.2.1 Mailbox busy' } : undefined,
    }));
  });

  afterAll(async () => {
    await spool?.close();
    await routed?.stop();
  });

  it('never tells the sender of a delay', async () => {
    const id = await submit(
      routed.daemon.ports.submission,
      'sender@example.com',
      ['slow@dest.test'],
      'quiet',
    );
    const received = (await spool.messages.get(id))!.receivedAt;
    await until(
      'retries past a second',
      async () => {
        const d = await deferrals(spool, id);
        return d.length >= 4 && d.at(-1)!.at - received > 1500;
      },
      15_000,
    );
    expect((await dsnsAbout(routed, spool, id)).size).toBe(0);
    expect((await deferrals(spool, id)).filter((e) => e.details?.['delayNotice'] === true)).toHaveLength(0);
  });
});
