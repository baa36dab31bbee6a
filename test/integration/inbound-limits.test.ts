import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/index.js';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { arfFor } from '../helpers/reports.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

/** Peak resident set of a process (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

/** A 9 MB feedback report whose original is nothing but VERP-token-shaped addresses. */
function tokenFlood(): Buffer {
  const token = 'b-1a2b3c-k9x2-0123456789abcdef@bounces.localhost\r\n';
  const report = arfFor('someone@isp.test', 'nobody@isp.test');
  const count = Math.floor((9 * 1000 * 1000 - report.length) / token.length);
  return Buffer.from(report.replace('\r\nbody\r\n', `\r\n${token.repeat(count)}`), 'latin1');
}

/** Opens a socket and collects everything the server says until it closes. */
function rawSocket(port: number): Promise<{ socket: Socket; text: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, text: () => text, closed: () => closed }));
    socket.once('error', reject);
  });
}

describe('the inbound listener bounds the work and time one client can take', () => {
  let t: TestDir;
  let daemon: Daemon;

  beforeAll(async () => {
    t = makeTestDir(`
[inbound]
listen = ["127.0.0.1:0"]
max_message_size = "10MB"
max_connections_per_ip = 12
data_timeout = "2s"
`);
    addUser(t, 'app', ['example.com'], 'pw');
    daemon = await startDaemon(t);
  });

  afterAll(async () => {
    await daemon?.stop();
    t?.cleanup();
  });

  it('keeps a small default size limit for reports', () => {
    const defaults = configSchema.parse({});
    expect(defaults.inbound.max_message_size).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(defaults.inbound.max_message_size).toBeLessThan(defaults.submission.max_message_size);
  });

  it('keeps answering other sessions while ten 9 MB token floods reach the feedback address (RELIABILITY 54)', async () => {
    const flood = tokenFlood();
    const probe = await RawSmtp.connect(daemon.ports.submission);
    await probe.command('EHLO probe.test');
    const rtts: number[] = [];
    let sending = true;
    const probing = (async () => {
      while (sending) {
        const started = performance.now();
        expect((await probe.command('NOOP')).code).toBe(250);
        rtts.push(performance.now() - started);
      }
    })();
    const replies = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const c = await RawSmtp.connect(daemon.ports.inbound!);
        await c.command('EHLO isp.test');
        await c.command('MAIL FROM:<>');
        expect((await c.command('RCPT TO:<fbl@bounces.localhost>')).code).toBe(250);
        const r = await c.data(flood);
        c.close();
        return r.code;
      }),
    );
    sending = false;
    await probing;
    probe.close();
    expect(replies).toEqual(Array(10).fill(250));
    // The floods held no valid token: each was read and mapped to nobody.
    await until(
      'ten reports mapped to no return path',
      () =>
        daemon.logs.filter((l) => l.msg === 'report maps to no valid return path; no suppression').length ===
        10,
    );
    const slowest = Math.max(...rtts);
    const peak = peakRssMiB(daemon.child.pid!);
    console.log(
      `NOOPs: ${rtts.length}, slowest ${slowest.toFixed(1)} ms; daemon peak RSS ${peak.toFixed(0)} MiB`,
    );
    expect(rtts.length).toBeGreaterThan(0);
    // Unbounded, one NOOP waited 17 s here; bounded, the slowest is 150–260 ms on a quiet
    // machine. The margin keeps a loaded CI machine from failing a sound daemon.
    expect(slowest).toBeLessThan(1000);
    // Ten 9 MB bodies held at once are 90 MB; the parse must not multiply that.
    expect(peak).toBeLessThan(300);
  });

  it('cuts a client that drips DATA at the total DATA deadline (RELIABILITY 55)', async () => {
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    await c.command('EHLO slow.test');
    await c.command('MAIL FROM:<>');
    expect((await c.command('RCPT TO:<fbl@bounces.localhost>')).code).toBe(250);
    expect((await c.command('DATA')).code).toBe(354);
    const started = Date.now();
    const drip = setInterval(() => c.write('x'), 200);
    const reply = await c.read();
    clearInterval(drip);
    expect(reply.code).toBe(421);
    expect(reply.text).toMatch(/4\.4\.2/);
    await until('the connection closed', () => c.closed);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('holds the per-IP connection limit, also after refused connections have gone (RELIABILITY 55)', async () => {
    const open: RawSmtp[] = [];
    for (let i = 0; i < 12; i++) open.push(await RawSmtp.connect(daemon.ports.inbound!));
    for (let i = 0; i < 3; i++) {
      const refused = await rawSocket(daemon.ports.inbound!);
      await until('the refusal', () => refused.closed());
      expect(refused.text()).toMatch(/^421 4\.7\.0/);
    }
    // Three refused sessions closing must not have freed three of the twelve slots.
    const late = await rawSocket(daemon.ports.inbound!);
    await until('the refusal', () => late.closed());
    expect(late.text()).toMatch(/^421 4\.7\.0/);
    for (const c of open) c.close();
  });

  it('refuses a client that talks before the banner, even half a line, with 421 and closes', async () => {
    const early = await rawSocket(daemon.ports.inbound!);
    early.socket.write('EHLO early');
    await until('the connection closed', () => early.closed());
    expect(early.text()).toMatch(/^421 .*You talk too soon/);
    expect(early.text()).not.toMatch(/^220/m);
  });

  it('still greets a patient client on the inbound port; submission greets at once and keeps no early-talker check', async () => {
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    expect((await c.command('EHLO ok.test')).code).toBe(250);
    c.close();
    const eager = await rawSocket(daemon.ports.submission);
    eager.socket.write('NOOP\r\n');
    await until('the NOOP answered', () => /^250 /m.test(eager.text()));
    expect(eager.text()).toMatch(/^220 /);
    eager.socket.end();
  });
});
