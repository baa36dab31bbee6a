import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/index.js';
import { openSpool, type Spool } from '../../src/spool/index.js';
import {
  addUser,
  makeTestDir,
  startDaemon,
  type Daemon,
  type LogLine,
  type TestDir,
} from '../helpers/daemon.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { recordFigure, type VectorOutcome } from './figures.js';

// RELIABILITY.md case 35 against the live inbound listener: MIME bombs sent as DSNs to a valid
// VERP return path. Each must be answered (parsed or refused) within 2 s, grow the daemon by less
// than 200 MiB, leave the submission listener answering, and suppress nobody.
const CAP = configSchema.parse({}).inbound.max_message_size;
const REPLY_MS = 2000;
const GROWTH_MIB = 200;
const NOOP_MS = 500;

let sink: Sink;
let t: TestDir;
let daemon: Daemon;
let spool: Spool;
const vectors: VectorOutcome[] = [];
const alive = (): boolean => daemon.child.exitCode === null && daemon.child.signalCode === null;
const statusKb = (field: 'VmRSS' | 'VmHWM'): number =>
  Number(
    new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(
      readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8'),
    )![1],
  );

/** The head of a DSN to `returnPath` whose top part uses `boundary`. */
const head = (returnPath: string, boundary: string): string =>
  'From: MAILER-DAEMON@mx.dest.test\r\n' +
  `To: ${returnPath}\r\n` +
  'Subject: Undelivered Mail Returned to Sender\r\n' +
  'MIME-Version: 1.0\r\n' +
  `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"\r\n\r\n`;

/** A delivery-status part that would suppress `recipient`, were it ever reached. */
const status = (recipient: string): string =>
  'Content-Type: message/delivery-status\r\n\r\n' +
  'Reporting-MTA: dns; mx.dest.test\r\n\r\n' +
  `Final-Recipient: rfc822; ${recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n`;

/** `levels` multipart/mixed parts each inside the last, the report part at the bottom. */
function nested(returnPath: string, recipient: string, levels: number): string {
  const open: string[] = [];
  for (let i = 0; i < levels; i++) {
    open.push(`--n${i}\r\nContent-Type: multipart/mixed; boundary="n${i + 1}"\r\n\r\n`);
  }
  const close: string[] = [];
  for (let i = levels; i >= 0; i--) close.push(`--n${i}--\r\n`);
  return `${head(returnPath, 'n0')}${open.join('')}--n${levels}\r\n${status(recipient)}\r\n${close.join('')}`;
}

/** `parts` empty siblings, then the report part. */
function siblings(returnPath: string, recipient: string, parts: number): string {
  return `${head(returnPath, 's')}${'--s\r\n\r\nx\r\n'.repeat(parts)}--s\r\n${status(recipient)}\r\n--s--\r\n`;
}

/** One text part of `bytes` base64 (76-character lines), then the report part. */
function base64Part(returnPath: string, recipient: string, bytes: number): string {
  const line = `${Buffer.alloc(57, 0xa5).toString('base64')}\r\n`;
  return (
    `${head(returnPath, 'b')}--b\r\nContent-Type: application/octet-stream\r\n` +
    `Content-Transfer-Encoding: base64\r\n\r\n${line.repeat(Math.ceil(bytes / line.length))}` +
    `--b\r\n${status(recipient)}\r\n--b--\r\n`
  );
}

/** Sends a message to `to`, returning the VERP return path it was delivered with. */
async function returnPathOf(to: string): Promise<string> {
  const c = await RawSmtp.connect(daemon.ports.submission);
  await c.login('app', 'pw');
  await c.command('MAIL FROM:<sender@example.com>');
  expect((await c.command(`RCPT TO:<${to}>`)).code).toBe(250);
  const r = await c.data(`From: sender@example.com\r\nTo: ${to}\r\nSubject: to ${to}\r\n\r\nhello\r\n`);
  expect(r.code).toBe(250);
  c.close();
  return (await until(`delivery to ${to}`, () => sink.messages.find((m) => m.rcptTo.includes(to)))).mailFrom;
}

/** A session on the submission port sending NOOP after NOOP; stop() gives the slowest round trip. */
async function probe(): Promise<() => Promise<{ slowest: number; count: number }>> {
  const c = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.2' });
  await c.command('EHLO probe.test');
  let running = true;
  let slowest = 0;
  let count = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const r = await c.command('NOOP');
      if (r.code !== 250) throw new Error(`NOOP answered ${r.text}`);
      slowest = Math.max(slowest, performance.now() - started);
      count++;
    }
  })();
  return async () => {
    running = false;
    await loop;
    c.close();
    return { slowest, count };
  };
}

beforeAll(async () => {
  sink = await startSink();
  t = makeTestDir(`
[delivery]
poll_interval = "200ms"

[routes."dest.test"]
host = "127.0.0.1"
port = ${sink.port}
`);
  addUser(t, 'app', ['example.com'], 'pw');
  daemon = await startDaemon(t);
  spool = openSpool(t.dataDir);
});

afterAll(async () => {
  recordFigure('corpus-mime-bombs', { figure: 'corpus', vectors });
  await spool?.close();
  await daemon?.stop();
  await sink?.close();
  t?.cleanup();
});

type Build = (returnPath: string, recipient: string) => string;

const bombs: readonly { name: string; tag: string; build: Build; expected: 250 | 552 }[] = [
  {
    name: '10 000 nested multipart/mixed levels',
    tag: 'nested',
    build: (rp, to) => nested(rp, to, 10_000),
    expected: 250,
  },
  {
    name: '1 000 000 sibling parts',
    tag: 'siblings',
    build: (rp, to) => siblings(rp, to, 1_000_000),
    expected: 552,
  },
  {
    name: 'sibling parts up to the size cap',
    tag: 'siblings-cap',
    build: (rp, to) => siblings(rp, to, Math.floor((CAP - 4096) / 10)),
    expected: 250,
  },
  {
    name: 'a 50 MiB base64 part',
    tag: 'base64',
    build: (rp, to) => base64Part(rp, to, 50 * 1024 * 1024),
    expected: 552,
  },
  {
    name: 'a base64 part up to the size cap',
    tag: 'base64-cap',
    build: (rp, to) => base64Part(rp, to, CAP - 4096),
    expected: 250,
  },
];

describe('case 35: MIME bombs reach the inbound listener as DSNs', () => {
  for (const { name, tag, build, expected } of bombs) {
    it(`${name} is ${expected === 250 ? 'read' : 'refused for its size'} within ${REPLY_MS} ms and ${GROWTH_MIB} MiB, and the submission port keeps answering`, async () => {
      const recipient = `${tag}@dest.test`;
      const rp = await returnPathOf(recipient);
      const bomb = build(rp, recipient);
      expect(bomb.length > CAP).toBe(expected === 552);
      const c = await RawSmtp.connect(daemon.ports.inbound!);
      await c.command('EHLO mx.dest.test');
      await c.command('MAIL FROM:<>');
      expect((await c.command(`RCPT TO:<${rp}>`)).code).toBe(250);
      // Resets the peak (VmHWM) to the current RSS, so the peak read afterwards is this bomb's.
      writeFileSync(`/proc/${daemon.child.pid}/clear_refs`, '5');
      const rssBefore = statusKb('VmRSS');
      const logsBefore = daemon.logs.length;
      const stopProbe = await probe();
      const started = performance.now();
      const reply = await c.data(bomb);
      const replyMs = performance.now() - started;
      c.close();
      const { slowest, count } = await stopProbe();
      const grownMiB = (statusKb('VmHWM') - rssBefore) / 1024;
      // A report that is read is acted on before its 250; its log line may still be on its way
      // through the pipe.
      const outcomeLine = (): LogLine | undefined =>
        daemon.logs.slice(logsBefore).find((l) => /^report |^inbound message|no longer held/.test(l.msg));
      const outcome =
        expected === 552
          ? outcomeLine()
          : await until('the report line', outcomeLine, 5000).catch(() => undefined);
      const suppressed = (await spool.suppressions.list({})).some((e) => e.address === recipient);
      console.log(
        `${name} (${(bomb.length / 1024 / 1024).toFixed(1)} MiB): ${reply.text} in ${replyMs.toFixed(0)} ms; ` +
          `peak RSS +${grownMiB.toFixed(0)} MiB; ${count} NOOPs, slowest ${slowest.toFixed(1)} ms; ` +
          `${outcome ? `${outcome.msg} (${String(outcome['reason'] ?? '')})` : 'no report line'}`,
      );
      const ok =
        reply.code === expected &&
        replyMs < REPLY_MS &&
        grownMiB < GROWTH_MIB &&
        slowest < NOOP_MS &&
        !suppressed &&
        alive();
      vectors.push({
        name: `MIME bomb on the inbound port: ${name}, ${reply.code} in ${replyMs.toFixed(0)} ms, peak RSS +${grownMiB.toFixed(0)} MiB, slowest NOOP ${slowest.toFixed(0)} ms`,
        neutralised: ok,
        smuggled: 0,
        crashed: !alive(),
      });
      expect(reply.code, reply.text).toBe(expected);
      if (expected === 552) expect(reply.text).toMatch(/^552 5\.3\.4/);
      else expect(outcome, 'a log line for the report').toBeDefined();
      expect(replyMs).toBeLessThan(REPLY_MS);
      expect(grownMiB).toBeLessThan(GROWTH_MIB);
      expect(count).toBeGreaterThan(0);
      expect(slowest).toBeLessThan(NOOP_MS);
      expect(suppressed).toBe(false);
      expect(alive()).toBe(true);
    });
  }
});
