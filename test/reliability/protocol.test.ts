import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { recordFigure, type VectorOutcome } from './figures.js';
import { message, sendOne, TRUSTED_LOOPBACK } from './submit.js';

/** The smtpsmug end-of-data look-alikes (RELIABILITY.md case 11). */
const SMTPSMUG: readonly [string, string][] = [
  ['\\n.\\n', '\n.\n'],
  ['\\r.\\r', '\r.\r'],
  ['\\r.\\n', '\r.\n'],
  ['\\n.\\r', '\n.\r'],
  ['\\n.\\r\\n', '\n.\r\n'],
  ['\\r\\n.\\n', '\r\n.\n'],
  ['\\r.\\r\\n', '\r.\r\n'],
  ['\\r\\n.\\r', '\r\n.\r'],
  ['\\r\\n\\0.\\r\\n', '\r\n\0.\r\n'],
];
const SMUGGLED = 'X-Smuggled: yes';

let t: TestDir;
let daemon: Daemon;
let sink: Sink;
const vectors: VectorOutcome[] = [];

/** Raw bytes in, everything the server says back until it closes or `quietMs` passes. */
async function exchange(
  port: number,
  payload: string,
  opts: { waitBanner?: boolean; quietMs?: number } = {},
): Promise<{ text: string; closed: boolean }> {
  const socket: Socket = connect({ port, host: '127.0.0.1' });
  let text = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  if (opts.waitBanner !== false) await until('banner', () => text.includes('\r\n'));
  socket.write(payload);
  const deadline = Date.now() + (opts.quietMs ?? 3000);
  await until('close or quiet', () => closed || Date.now() > deadline, (opts.quietMs ?? 3000) + 5000);
  socket.destroy();
  return { text, closed };
}

const alive = (): boolean => daemon.child.exitCode === null && daemon.child.signalCode === null;

beforeAll(async () => {
  sink = await startSink();
  t = makeTestDir(`[routes."dest.test"]\nhost = "127.0.0.1"\nport = ${sink.port}\n`, TRUSTED_LOOPBACK);
  addUser(t, 'loop', ['loop.test'], 'pw');
  daemon = await startDaemon(t);
});

afterAll(async () => {
  recordFigure('corpus-protocol', { figure: 'corpus', vectors });
  await daemon?.stop();
  await sink?.close();
  t?.cleanup();
});

describe('smuggling and protocol abuse', () => {
  it('case 11: each smtpsmug vector sent by swaks -ndf gives one message or a 5xx, never two, and no bare CR/LF/NUL leaves', async () => {
    for (const [name, vector] of SMTPSMUG) {
      const file = join(t.dir, 'smug.eml');
      // swaks sends the file as it is (-ndf), final dot included.
      writeFileSync(
        file,
        `Subject: smtpsmug\r\n\r\nfirst message${vector}MAIL FROM:<sender@loop.test>\r\nRCPT TO:<rcpt@dest.test>\r\n` +
          `DATA\r\n${SMUGGLED}\r\nSubject: smuggled\r\n\r\nsecond message\r\n.\r\n`,
      );
      const r = spawnSync(
        'swaks',
        [
          '--server',
          '127.0.0.1',
          '--port',
          String(daemon.ports.submission),
          '--from',
          'sender@loop.test',
          '--to',
          'rcpt@dest.test',
          '--data',
          `@${file}`,
          '-ndf',
          '--timeout',
          '10',
        ],
        { encoding: 'latin1', timeout: 30_000 },
      );
      const finals = [...r.stdout.matchAll(/^<\S*\s+(\d{3}) /gm)].map((m) => Number(m[1]));
      const accepted = (r.stdout.match(/^<\S*\s+250 2\.0\.0 OK queued/gm) ?? []).length;
      const refused = /^<\S*\s+5\d\d /m.test(r.stdout);
      vectors.push({
        name: `smtpsmug ${name}`,
        neutralised: accepted <= 1 && (refused || accepted === 1) && alive(),
        smuggled: Math.max(0, accepted - 1),
        crashed: !alive(),
      });
      expect(finals.length, r.stdout + r.stderr).toBeGreaterThan(0);
      expect(accepted, `${name}: ${r.stdout}`).toBeLessThanOrEqual(1);
    }
    // One clean message after the corpus: once it is at the sink, everything before it would be too.
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.command('EHLO client.test');
    expect((await sendOne(c, message('after-smtpsmug'))).code).toBe(250);
    c.close();
    await until('the clean message at the sink', () =>
      sink.messages.some((m) => m.body.includes('after-smtpsmug')),
    );
    const smuggledAtSink = sink.messages.filter(
      (m) => m.body.includes(SMUGGLED) && !m.body.includes('first message'),
    ).length;
    const dirty = sink.messages.filter((m) => /\r(?!\n)|(?<!\r)\n|\0/.test(m.body.toString('latin1'))).length;
    expect(smuggledAtSink).toBe(0);
    expect(dirty).toBe(0);
    expect(vectors.filter((v) => v.name.startsWith('smtpsmug') && !v.neutralised)).toEqual([]);
  });

  it('case 12: ".." and a MAIL command in two TCP segments at DATA start do not end DATA early', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.command('EHLO client.test');
    expect((await c.command('MAIL FROM:<sender@loop.test>')).code).toBe(250);
    expect((await c.command('RCPT TO:<rcpt@dest.test>')).code).toBe(250);
    expect((await c.command('DATA')).code).toBe(354);
    c.write('..');
    // A pause so the two writes leave as two segments (the split is the attack, not a wait for an event).
    await sleep(200);
    c.write('\r\nMAIL FROM:<evil@ext.test>\r\n');
    await sleep(200);
    c.write(`${message('segmented')}.\r\n`);
    // One reply to the whole DATA (250, or 554 for the header block that starts with "."), and the
    // next one belongs to NOOP: an early end would have answered the MAIL first.
    const reply = await c.read();
    const next = await c.command('NOOP');
    const early = /Accepted/.test(reply.text) || /Accepted|queued/.test(next.text);
    const ok = !early && /^(250 2\.0\.0 OK queued as|554 )/.test(reply.text) && alive();
    vectors.push({
      name: 'segmented ".." + MAIL at DATA start',
      neutralised: ok,
      smuggled: early ? 1 : 0,
      crashed: !alive(),
    });
    expect(reply.text).toMatch(/^(250 2\.0\.0 OK queued as|554 )/);
    expect(next.code).toBe(250);
    expect(next.text).not.toMatch(/queued|Accepted/);
    c.close();
  });

  it('case 14: STARTTLS with 3000 NOOPs and a MAIL in the same write gets no reply to them inside TLS', async () => {
    const socket = connect({ port: daemon.ports.submission, host: '127.0.0.1' });
    let plain = '';
    socket.on('data', (d: Buffer) => (plain += d.toString('latin1')));
    await until('banner', () => plain.includes('\r\n'));
    socket.write('EHLO client.test\r\n');
    await until('EHLO reply', () => /\r\n250 /.test(plain));
    plain = '';
    socket.write(`STARTTLS\r\n${'NOOP\r\n'.repeat(3000)}MAIL FROM:<sender@loop.test>\r\n`);
    await until('STARTTLS reply or close', () => plain.includes('\r\n') || socket.destroyed);
    socket.removeAllListeners('data');
    const ready = plain.startsWith('220');
    let inside = '';
    let handshake = false;
    if (ready) {
      const secure = tlsConnect({ socket, rejectUnauthorized: false });
      secure.on('error', () => undefined);
      handshake = await new Promise<boolean>((r) => {
        secure.once('secureConnect', () => r(true));
        secure.once('close', () => r(false));
      });
      if (handshake) {
        secure.on('data', (d: Buffer) => (inside += d.toString('latin1')));
        // Before EHLO in TLS, MAIL must be refused: the pre-TLS state is gone.
        secure.write('MAIL FROM:<sender@loop.test>\r\n');
        await until('reply inside TLS', () => inside.includes('\r\n') || secure.destroyed);
        secure.destroy();
      }
    }
    socket.destroy();
    const unsolicited = inside.split('\r\n').filter((l) => /^250 /.test(l)).length;
    const ok = unsolicited === 0 && (!handshake || /^503 /.test(inside)) && alive();
    vectors.push({
      name: 'STARTTLS + 3000 NOOP + MAIL in one write',
      neutralised: ok,
      smuggled: unsolicited,
      crashed: !alive(),
    });
    expect(alive()).toBe(true);
    expect(unsolicited, inside).toBe(0);
    if (handshake) expect(inside).toMatch(/^503 /);
  });

  it('case 16: 20 000 pipelined NOOPs in one write leave the daemon alive and another session served', async () => {
    const flood = connect({ port: daemon.ports.submission, host: '127.0.0.1' });
    let replies = 0;
    let rest = '';
    flood.on('data', (d: Buffer) => {
      const lines = (rest + d.toString('latin1')).split('\r\n');
      rest = lines.pop() ?? '';
      replies += lines.filter((l) => l.startsWith('250 ')).length;
    });
    flood.on('error', () => undefined);
    await new Promise((r) => flood.once('connect', r));
    flood.write(`EHLO flood.test\r\n${'NOOP\r\n'.repeat(20_000)}`);
    const other = await RawSmtp.connect(daemon.ports.submission);
    await other.command('EHLO other.test');
    const started = Date.now();
    const reply = await sendOne(other, message('beside-the-flood'));
    const latency = Date.now() - started;
    other.close();
    await until('the flood answered or cut', () => replies >= 20_000 || flood.destroyed, 60_000);
    flood.destroy();
    vectors.push({
      name: `20 000 pipelined NOOPs (other session: ${latency} ms)`,
      neutralised: reply.code === 250 && alive(),
      smuggled: 0,
      crashed: !alive(),
    });
    expect(reply.code).toBe(250);
    expect(alive()).toBe(true);
  });

  it('case 17: an early talker on the inbound port gets 421 and is closed', async () => {
    const r = await exchange(daemon.ports.inbound!, 'EHLO early.test\r\n', { waitBanner: false });
    vectors.push({
      name: 'early talker (inbound)',
      neutralised: /^421 /m.test(r.text) && r.closed && alive(),
      smuggled: 0,
      crashed: !alive(),
    });
    expect(r.text).toMatch(/^421 .*talk too soon/im);
    expect(r.closed).toBe(true);
  });

  it('case 18: an HTTP request to the SMTP ports gets 421 and a close', async () => {
    for (const [name, port] of [
      ['submission', daemon.ports.submission],
      ['inbound', daemon.ports.inbound!],
    ] as const) {
      const r = await exchange(port, 'GET / HTTP/1.1\r\nHost: petrel.test\r\n\r\n');
      const ok = /\r\n421 /.test(r.text) && r.closed && alive();
      vectors.push({ name: `HTTP request to ${name}`, neutralised: ok, smuggled: 0, crashed: !alive() });
      expect(r.text, name).toMatch(/\r\n421 /);
      expect(r.closed).toBe(true);
    }
  });
});
