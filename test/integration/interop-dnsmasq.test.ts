import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { interopTool, startDnsmasq, type Dnsmasq } from '../helpers/interop.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

const tool = interopTool('/usr/sbin/dnsmasq', 'dnsmasq-base');

async function submit(port: number, to: string, subject: string): Promise<string> {
  const c = await RawSmtp.connect(port);
  await c.login('app', 'pw');
  await c.command('MAIL FROM:<sender@example.com>');
  await c.command(`RCPT TO:<${to}>`);
  const r = await c.data(`From: sender@example.com\r\nSubject: ${subject}\r\n\r\nhi\r\n`);
  c.close();
  expect(r.code).toBe(250);
  return /queued as (\S+)/.exec(r.text)![1]!;
}

describe.skipIf(!tool.available)(
  `MX routing through a real DNS server (dnsmasq)${tool.available ? '' : `: ${tool.reason}`}`,
  () => {
    let dns: Dnsmasq;
    let sink: Sink;
    let t: TestDir;
    let daemon: Daemon;
    let spool: Spool;

    beforeAll(async () => {
      sink = await startSink();
      dns = await startDnsmasq([
        '--mx-host=example.com,mx.example.com,10',
        '--host-record=mx.example.com,127.0.0.1',
        // The preferred MX points where nothing listens, so delivery must fall back to the next.
        '--mx-host=pref.test,mx1.pref.test,10',
        '--mx-host=pref.test,mx2.pref.test,20',
        '--host-record=mx1.pref.test,127.0.0.2',
        '--host-record=mx2.pref.test,127.0.0.1',
        '--host-record=implicit.test,127.0.0.1',
      ]);
      t = makeTestDir(`
[dns]
servers = ["${dns.server}"]

[delivery]
mx_port = ${sink.port}
poll_interval = "200ms"
`);
      addUser(t, 'app', ['example.com'], 'pw');
      daemon = await startDaemon(t);
      spool = openSpool(t.dataDir);
    });

    afterAll(async () => {
      await spool?.close();
      await daemon?.stop();
      await dns?.stop();
      await sink?.close();
      t?.cleanup();
    });

    it('falls back from the preferred MX to the next one', async () => {
      const id = await submit(daemon.ports.submission, 'a@pref.test', 'pref');
      await until(async () => (await spool.queue.events(id)).some((e) => e.type === 'delivery'));
      const delivery = (await spool.queue.events(id)).find((e) => e.type === 'delivery')!;
      expect(delivery.mx).toBe('mx2.pref.test');
      const refused = (await spool.queue.events(id)).filter((e) => e.type === 'transient_failure');
      expect(refused).toHaveLength(0);
    });

    it('delivers to the implicit MX of a name with only an A record', async () => {
      const id = await submit(daemon.ports.submission, 'b@implicit.test', 'implicit');
      await until(async () => (await spool.queue.events(id)).some((e) => e.type === 'delivery'));
    });

    it('bounces a recipient at a domain that does not exist, with a DSN to the sender', async () => {
      const id = await submit(daemon.ports.submission, 'c@missing.test', 'missing');
      await until(() => sink.messages.some((m) => m.mailFrom === '' && m.body.includes(id)));
      const dsn = sink.messages.find((m) => m.mailFrom === '' && m.body.includes(id))!;
      expect(dsn.rcptTo).toEqual(['sender@example.com']);
      expect(dsn.body.toString()).toMatch(/Status: 5\.1\.2/);
    });
  },
);
