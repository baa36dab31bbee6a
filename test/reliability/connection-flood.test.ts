import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/index.js';
import { makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { recordFigure, type VectorOutcome } from './figures.js';

// RELIABILITY.md case 24, its second half: a thousand slow sockets from one client, against the
// default caps (submission 50 per IP and 1000 in all; inbound 20 per IP and 200 in all).
const SOCKETS = 1000;
const defaults = configSchema.parse({});
const SUBMISSION_PER_IP = defaults.submission.max_connections_per_ip;
const INBOUND_PER_IP = defaults.inbound.max_connections_per_ip;
const INBOUND_MAX = defaults.inbound.max_connections;
/** Connections opened at once; their outcome is awaited before the next batch. */
const BATCH = 100;
/** Well under either idle timeout (submission 5 min, inbound 1 min). */
const DRIP_MS = 250;

let t: TestDir;
let daemon: Daemon;
/** A second daemon, so that no session of the per-IP tests is still closing when this one fills up. */
let t2: TestDir;
let full: Daemon;
const vectors: VectorOutcome[] = [];
const alive = (d = daemon): boolean => d.child.exitCode === null && d.child.signalCode === null;
const rssKb = (d = daemon): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.child.pid}/status`, 'utf8'))![1]);

/** A connection that, once greeted, sends one byte of `NOOP\r\n` every DRIP_MS. */
interface Slow {
  readonly socket: Socket;
  text: string;
  closed: boolean;
  drip?: NodeJS.Timeout;
}

function openSlow(port: number, localAddress: string): Slow {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  const s: Slow = { socket, text: '', closed: false };
  const line = 'NOOP\r\n';
  let i = 0;
  socket.on('data', (d: Buffer) => {
    s.text += d.toString('latin1');
    if (!s.drip && s.text.startsWith('220')) {
      s.drip = setInterval(() => socket.write(line[i++ % line.length]!), DRIP_MS);
    }
  });
  socket.on('close', () => {
    s.closed = true;
    clearInterval(s.drip);
  });
  socket.on('error', () => undefined);
  return s;
}

/** Greeted (and dripping) or refused and closed: every socket has had its answer. */
const settled = (s: Slow): boolean => s.text.startsWith('220') || (s.closed && s.text.includes('\r\n'));
const refused = (s: Slow): boolean => s.closed && /^421 /.test(s.text);
const admitted = (s: Slow): boolean => !s.closed && s.text.startsWith('220');

/** Opens SOCKETS slow connections in batches; socket i comes from addresses[i % length]. */
async function flood(port: number, addresses: readonly string[]): Promise<Slow[]> {
  const all: Slow[] = [];
  while (all.length < SOCKETS) {
    const batch = Array.from({ length: Math.min(BATCH, SOCKETS - all.length) }, (_, k) =>
      openSlow(port, addresses[(all.length + k) % addresses.length]!),
    );
    all.push(...batch);
    await until('every connection of the batch answered', () => batch.every(settled), 15_000);
  }
  return all;
}

function closeAll(sockets: readonly Slow[]): Promise<void> {
  for (const s of sockets) {
    clearInterval(s.drip);
    s.socket.destroy();
  }
  return until('every socket closed', () => sockets.every((s) => s.closed)).then(() => undefined);
}

/**
 * A session from another address that sends NOOP after NOOP until stopped; the slowest round
 * trip, in ms. It is opened before the flood, so it measures the listener while the flood lands.
 */
async function probe(port: number, localAddress: string): Promise<() => Promise<number>> {
  const c = await RawSmtp.connect(port, { localAddress });
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
    expect(count).toBeGreaterThan(0);
    return slowest;
  };
}

/** The daemon's own count of sessions refused for the per-IP cap. */
const perIpRefusals = (d = daemon): number =>
  d.logs.filter((l) => l.msg === 'too many connections from one address').length;

beforeAll(async () => {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const nofile = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? 'Infinity');
  expect(nofile, 'ulimit -n must allow the sockets of this file').toBeGreaterThan(SOCKETS + 200);
  // An empty submission slice keeps every connection cap at its default.
  t = makeTestDir('[inbound]\nlisten = ["127.0.0.1:0"]\n', '');
  t2 = makeTestDir('[inbound]\nlisten = ["127.0.0.1:0"]\n', '');
  [daemon, full] = await Promise.all([startDaemon(t), startDaemon(t2)]);
});

afterAll(async () => {
  recordFigure('corpus-connection-flood', { figure: 'corpus', vectors });
  await Promise.all([daemon?.stop(), full?.stop()]);
  t?.cleanup();
  t2?.cleanup();
});

describe('case 24: a thousand slow sockets from one client', () => {
  const listeners = [
    { name: 'submission', port: () => daemon.ports.submission, cap: SUBMISSION_PER_IP },
    { name: 'inbound', port: () => daemon.ports.inbound!, cap: INBOUND_PER_IP },
  ] as const;

  for (const { name, port, cap } of listeners) {
    it(`on the ${name} port, sockets past the per-IP cap of ${cap} get 421 and are closed; another client still gets a prompt reply`, async () => {
      const rssBefore = rssKb();
      const refusalsBefore = perIpRefusals();
      const stopProbe = await probe(port(), '127.0.0.2');
      const started = performance.now();
      const sockets = await flood(port(), ['127.0.0.1']);
      const floodMs = performance.now() - started;
      const grown = rssKb() - rssBefore;
      const held = sockets.filter(admitted).length;
      const shut = sockets.filter(refused).length;
      // The held sessions drip well under the idle timeout: they are still there, and the cap with them.
      await until('the held sessions have dripped a whole NOOP', () =>
        sockets.filter(admitted).every((s) => /\r\n250 /.test(s.text)),
      );
      const stillHeld = sockets.filter(admitted).length;
      const refusals = perIpRefusals() - refusalsBefore;
      const slowest = await stopProbe();
      await closeAll(sockets);
      console.log(
        `${name}: ${SOCKETS} sockets in ${floodMs.toFixed(0)} ms, ${held} held, ${shut} refused; ` +
          `RSS +${grown} kB; slowest NOOP from another address ${slowest.toFixed(1)} ms`,
      );
      const ok =
        held === cap && shut === SOCKETS - cap && stillHeld === cap && slowest < 500 && grown < 100 * 1024;
      vectors.push({
        name: `${SOCKETS} slow sockets from one IP to ${name} (cap ${cap}): ${shut} got 421, slowest NOOP elsewhere ${slowest.toFixed(0)} ms, RSS +${grown} kB`,
        neutralised: ok && alive(),
        smuggled: 0,
        crashed: !alive(),
      });
      expect(held).toBe(cap);
      expect(shut).toBe(SOCKETS - cap);
      expect(refusals).toBe(SOCKETS - cap);
      expect(stillHeld).toBe(cap);
      expect(slowest).toBeLessThan(500);
      expect(floodMs).toBeLessThan(15_000);
      expect(grown).toBeLessThan(100 * 1024);
      expect(alive()).toBe(true);
    });
  }

  it(`on the inbound port, sockets from many addresses past max_connections (${INBOUND_MAX}) get 421; submission still answers`, async () => {
    // 50 addresses, so that no one of them reaches the per-IP cap before the listener is full.
    const addresses = Array.from({ length: 50 }, (_, i) => `127.0.1.${i + 1}`);
    const rssBefore = rssKb(full);
    const stopProbe = await probe(full.ports.submission, '127.0.0.2');
    const sockets = await flood(full.ports.inbound!, addresses);
    const grown = rssKb(full) - rssBefore;
    const slowest = await stopProbe();
    const held = sockets.filter(admitted).length;
    const shut = sockets.filter((s) => refused(s) && /Too many connected clients/.test(s.text)).length;
    const refusals = perIpRefusals(full);
    await closeAll(sockets);
    console.log(
      `inbound, 50 addresses: ${held} held, ${shut} refused as full; RSS +${grown} kB; slowest submission NOOP ${slowest.toFixed(1)} ms`,
    );
    vectors.push({
      name: `${SOCKETS} slow sockets from 50 IPs to inbound (max ${INBOUND_MAX}): ${shut} got 421, slowest NOOP elsewhere ${slowest.toFixed(0)} ms, RSS +${grown} kB`,
      neutralised: held === INBOUND_MAX && shut === SOCKETS - INBOUND_MAX && slowest < 500 && alive(full),
      smuggled: 0,
      crashed: !alive(full),
    });
    expect(held).toBe(INBOUND_MAX);
    expect(shut).toBe(SOCKETS - INBOUND_MAX);
    expect(refusals).toBe(0);
    expect(slowest).toBeLessThan(500);
    expect(grown).toBeLessThan(100 * 1024);
    // Once they have gone, the listener takes new sessions again.
    await until('a new inbound session answered', async () => {
      const c = await RawSmtp.connect(full.ports.inbound!, { localAddress: '127.0.0.2' }).catch(() => null);
      const code = c ? (await c.command('NOOP')).code : 0;
      c?.close();
      return code === 250;
    });
    expect(alive(full)).toBe(true);
  });
});
