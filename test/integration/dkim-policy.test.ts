import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DkimDnsRecord } from '../../src/dkim/index.js';
import { openSpool } from '../../src/spool/index.js';
import type { Daemon, TestDir } from '../helpers/daemon.js';
import {
  addUserAsync,
  delivered,
  keygen,
  login,
  publishedRecords,
  requireDkimpy,
  signers,
  transact,
  verifyManyWithBoth,
} from '../helpers/dkim-check.js';
import { startRoutedDaemon } from '../helpers/routed.js';
import type { Sink } from '../helpers/sink.js';

/*
 * The [dkim] options against the real daemon: also_sign_as adds the platform domain's
 * signature, and require refuses what cannot be signed at the end of DATA.
 */

const USER = 'app';
const PASS = 'policy pw';

const message = (from: string, subject: string): Buffer =>
  Buffer.from(
    `From: ${from}\r\nTo: someone@dest.test\r\nSubject: ${subject}\r\n\r\n${subject} body\r\n`,
    'latin1',
  );

/** Every recipient row in the spool, in any state. */
async function recipientRows(t: TestDir): Promise<number> {
  const spool = openSpool(t.dataDir);
  try {
    return Object.values(await spool.queue.counts()).reduce((a, b) => a + b, 0);
  } finally {
    await spool.close();
  }
}

interface Setup {
  readonly t: TestDir;
  readonly sink: Sink;
  readonly daemon: Daemon;
  readonly records: DkimDnsRecord[];
  stop(): Promise<void>;
}

/** A daemon with `dkimToml` as its [dkim] section, delivering dest.test to a sink of its own. */
async function setup(
  dkimToml: string,
  keys: [domain: string, selector: string, algo: 'rsa' | 'ed25519'][],
  allowFrom: string[],
): Promise<Setup> {
  let records: DkimDnsRecord[] = [];
  const routed = await startRoutedDaemon({
    toml: `[dkim]\n${dkimToml}\n`,
    user: false,
    prepare: async (t) => {
      await addUserAsync(t, USER, allowFrom, PASS);
      await Promise.all(keys.map(([domain, selector, algo]) => keygen(t, domain, selector, algo)));
      records = await publishedRecords(t, ...new Set(keys.map(([d]) => d)));
    },
  });
  return { ...routed, records };
}

describe('[dkim] options', () => {
  /** require = true, also_sign_as = "platform.test". */
  let strict: Setup;
  /** also_sign_as = "platform.test" only. */
  let lenient: Setup;

  beforeAll(async () => {
    requireDkimpy();
    [strict, lenient] = await Promise.all([
      setup(
        'require = true\nalso_sign_as = "platform.test"',
        [
          ['example.com', 'brand', 'rsa'],
          ['platform.test', 'plat', 'rsa'],
        ],
        ['example.com', 'platform.test', 'nokey.test'],
      ),
      setup('also_sign_as = "platform.test"', [['platform.test', 'plat2', 'ed25519']], ['nokey.test']),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([strict?.stop(), lenient?.stop()]);
  });

  it('also_sign_as adds a second signature d=platform.test, and mailauth and dkimpy verify both at the sink', async () => {
    const c = await login(strict.daemon.ports.submission, USER, PASS);
    const brand = await transact(
      c,
      'ann@example.com',
      'brand@dest.test',
      message('Ann <ann@example.com>', 'brand'),
    );
    const own = await transact(c, 'ops@platform.test', 'own@dest.test', message('ops@platform.test', 'own'));
    c.close();
    expect(brand.code, brand.text).toBe(250);
    expect(own.code, own.text).toBe(250);
    const got = [
      (await delivered(strict.sink, 'brand@dest.test')).body,
      (await delivered(strict.sink, 'own@dest.test')).body,
    ];
    expect(signers(got[0]!)).toEqual(['example.com/brand/rsa-sha256', 'platform.test/plat/rsa-sha256']);
    // The platform's own mail is signed once, not twice with the same key.
    expect(signers(got[1]!)).toEqual(['platform.test/plat/rsa-sha256']);
    expect(await verifyManyWithBoth(got, strict.records)).toEqual([
      { mailauth: ['pass', 'pass'], dkimpy: [true, true] },
      { mailauth: ['pass'], dkimpy: [true] },
    ]);
  });

  it('require refuses mail from a domain without a key with 550 5.7.1 at the end of DATA and queues nothing', async () => {
    const before = await recipientRows(strict.t);
    const c = await login(strict.daemon.ports.submission, USER, PASS);
    expect((await c.command('MAIL FROM:<x@nokey.test>')).code).toBe(250);
    expect((await c.command('RCPT TO:<refused@dest.test>')).code).toBe(250);
    // The platform domain's key does not count: there is no key for the From: domain itself.
    const reply = await c.data(message('x@nokey.test', 'refused'));
    expect(reply.code).toBe(550);
    expect(reply.text).toMatch(/^550[ -]5\.7\.1 /);
    expect(reply.text).toMatch(/DKIM/);
    // The session goes on: the next message, from a domain with a key, is taken.
    const next = await transact(c, 'ann@example.com', 'after@dest.test', message('ann@example.com', 'after'));
    c.close();
    expect(next.code, next.text).toBe(250);
    await delivered(strict.sink, 'after@dest.test');
    expect(await recipientRows(strict.t)).toBe(before + 1);
    expect(strict.sink.messages.some((m) => m.rcptTo.includes('refused@dest.test'))).toBe(false);
  });

  // The option's contract (src/config/schema.ts): "Also sign every message with this domain's key".
  it('also_sign_as without require signs mail from a domain without a key of its own with the platform key', async () => {
    const c = await login(lenient.daemon.ports.submission, USER, PASS);
    const reply = await transact(
      c,
      'x@nokey.test',
      'platform-only@dest.test',
      message('x@nokey.test', 'platform only'),
    );
    c.close();
    expect(reply.code, reply.text).toBe(250);
    const got = (await delivered(lenient.sink, 'platform-only@dest.test')).body;
    expect(signers(got)).toEqual(['platform.test/plat2/ed25519-sha256']);
    expect(await verifyManyWithBoth([got], lenient.records)).toEqual([
      { mailauth: ['pass'], dkimpy: [true] },
    ]);
  });
});
