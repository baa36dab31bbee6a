import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DkimDnsRecord } from '../../src/dkim/index.js';
import type { Daemon, TestDir } from '../helpers/daemon.js';
import {
  addUserAsync,
  delivered,
  dkimSignatures,
  keygen,
  logged,
  login,
  publishedRecords,
  requireDkimpy,
  signers,
  transact,
  verifyWithBoth,
} from '../helpers/dkim-check.js';
import type { Sink } from '../helpers/sink.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';

/*
 * Keys made by the CLI while the daemon runs: the daemon notices the database change
 * (data_version, polled every second) and signs with the new key without a restart.
 */

const USER = 'app';
const PASS = 'live pw';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until the daemon has loaded `key` (it polls the database every second). */
async function keyLoaded(daemon: Daemon, key: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!daemon.logs.some((l) => l.msg === 'DKIM keys refreshed' && (l['keys'] as string[]).includes(key))) {
    if (Date.now() > deadline) throw new Error(`the daemon did not pick up ${key}`);
    await sleep(50);
  }
}

// The tests below are one story, in order: no key, a first key, a rotated key, a reload.
describe('DKIM keys changed while the daemon runs', () => {
  let routed: Routed | undefined;
  let t: TestDir;
  let sink: Sink;
  let daemon: Daemon;
  let n = 0;
  /** What `petrel dkim dns late.test` prints once both keys exist. */
  let records: DkimDnsRecord[] = [];

  /** Submits one message From late.test; returns the bytes the sink received for it. */
  async function send(subject: string): Promise<Buffer> {
    const rcpt = `${subject}-${++n}@dest.test`;
    const c = await login(daemon.ports.submission, USER, PASS);
    const reply = await transact(
      c,
      'sender@late.test',
      rcpt,
      Buffer.from(
        `From: sender@late.test\r\nTo: ${rcpt}\r\nSubject: ${subject}\r\n\r\n${subject}\r\n`,
        'latin1',
      ),
    );
    c.close();
    expect(reply.code, reply.text).toBe(250);
    return (await delivered(sink, rcpt)).body;
  }

  beforeAll(async () => {
    requireDkimpy();
    routed = await startRoutedDaemon({
      user: false,
      prepare: (dir) => addUserAsync(dir, USER, ['late.test'], PASS),
    });
    ({ t, sink, daemon } = routed);
  }, 30_000);

  afterAll(async () => {
    await routed?.stop();
  });

  it('sends unsigned while the domain has no key, then signs with a key made by `petrel dkim keygen` as soon as the daemon has seen it', async () => {
    const unsigned = await send('before');
    expect(dkimSignatures(unsigned)).toEqual([]);
    expect(
      daemon.logs.some((l) => l.msg === 'no DKIM key for the From: domain; not signed as that domain'),
    ).toBe(true);

    await keygen(t, 'late.test', 'live1', 'rsa');
    await keyLoaded(daemon, 'late.test/live1/rsa-sha256');
    const signed = await send('after');
    expect(signers(signed)).toEqual(['late.test/live1/rsa-sha256']);
    expect(await verifyWithBoth(signed, await publishedRecords(t, 'late.test'))).toEqual({
      mailauth: ['pass'],
      dkimpy: [true],
    });
  }, 30_000);

  it('signs with a rotated key (a second keygen) and keeps the old one published', async () => {
    await keygen(t, 'late.test', 'live2', 'rsa');
    await keyLoaded(daemon, 'late.test/live2/rsa-sha256');
    const signed = await send('rotated');
    expect(signers(signed)).toEqual(['late.test/live2/rsa-sha256']);
    records = await publishedRecords(t, 'late.test');
    expect(records.map((r) => r.name).sort()).toEqual([
      'live1._domainkey.late.test',
      'live2._domainkey.late.test',
    ]);
    expect(await verifyWithBoth(signed, records)).toEqual({ mailauth: ['pass'], dkimpy: [true] });
  }, 30_000);

  it('reloads keys on SIGHUP without dropping an open session, keeps running, and still signs', async () => {
    const c = await login(daemon.ports.submission, USER, PASS);
    const from = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    await logged(daemon.logs, 'reloaded DKIM keys', from);
    expect(daemon.child.exitCode).toBeNull();
    expect(daemon.child.signalCode).toBeNull();
    expect(
      daemon.logs
        .slice(from)
        .filter((l) => Number(l.level) >= 50 || l.level === 'error' || l.level === 'fatal'),
    ).toEqual([]);
    // The session that was open across the reload goes on.
    const rcpt = `reloaded-${++n}@dest.test`;
    const reply = await transact(
      c,
      'sender@late.test',
      rcpt,
      Buffer.from(`From: sender@late.test\r\nTo: ${rcpt}\r\nSubject: reloaded\r\n\r\nreloaded\r\n`, 'latin1'),
    );
    c.close();
    expect(reply.code, reply.text).toBe(250);
    const signed = (await delivered(sink, rcpt)).body;
    expect(signers(signed)).toEqual(['late.test/live2/rsa-sha256']);
    expect(await verifyWithBoth(signed, records)).toEqual({
      mailauth: ['pass'],
      dkimpy: [true],
    });
  }, 30_000);
});
