import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mentionedAddresses } from '../../src/privacy/index.js';
import { openSpool, type NewMessage, type Spool } from '../../src/spool/index.js';
import {
  addUser,
  cliAsync,
  makeTestDir,
  startDaemon,
  type CliResult,
  type Daemon,
  type TestDir,
} from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

// More messages than SQLite binds variables in one statement (32 766).
const BULK = 33_500;
const SENDER = 'bulk@example.com';

describe('privacy erasure on a large spool', () => {
  let t: TestDir;
  let daemon: Daemon;
  let spool: Spool;
  let tenantB: number;

  const message = (accountId: number, text: string): NewMessage => {
    const body = Buffer.from(`From: ${SENDER}\r\nTo: r@hold.test\r\nSubject: bulk\r\n\r\n${text}\r\n`);
    return {
      accountId,
      mailFrom: SENDER,
      recipients: [{ address: 'r@hold.test', domain: 'hold.test' }],
      headerMessageId: null,
      body,
      listener: 'test',
      mentions: mentionedAddresses(body),
    };
  };

  beforeAll(async () => {
    t = makeTestDir(`
[delivery]
poll_interval = "200ms"
`);
    addUser(t, 'bulk', ['example.com'], 'pw');
    addUser(t, 'other', ['example.com'], 'pw');
    spool = openSpool(t.dataDir);
    const tenantA = (await spool.accounts.get('bulk'))!.id;
    tenantB = (await spool.accounts.get('other'))!.id;
    // Held: no delivery leases these while the erasure runs.
    await spool.queue.suspend('hold.test', 'test');
    const a = message(tenantA, 'hello');
    for (let i = 0; i < BULK; i += 2000) {
      await Promise.all(
        Array.from({ length: Math.min(2000, BULK - i) }, () =>
          spool.messages.insert(spool.messages.newId(), a),
        ),
      );
    }
    // The same sender's mail in another tenant's account.
    for (let i = 0; i < 3; i++)
      await spool.messages.insert(spool.messages.newId(), message(tenantB, 'tenant b'));
    daemon = await startDaemon(t);
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await spool?.close();
    t?.cleanup();
  });

  it('erases a sender of more than 33 000 messages in chunks while the daemon keeps accepting mail, and spares the other tenant', async () => {
    let erased: CliResult | null = null;
    const erasing = cliAsync(t, ['--json', 'privacy', 'erase', SENDER, '--account', 'bulk']).then(
      (r) => (erased = r),
    );
    // Some chunks are deleted, and the erasure is not over.
    await until(
      'the erasure to be under way',
      async () => erased !== null || (await spool.messages.count()) < BULK + 3,
      60_000,
    );
    expect(erased, JSON.stringify(erased)).toBeNull();

    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('bulk', 'pw');
    await c.command(`MAIL FROM:<${SENDER}>`);
    await c.command('RCPT TO:<r@hold.test>');
    const reply = await c.data(
      `From: ${SENDER}\r\nTo: r@hold.test\r\nSubject: during\r\n\r\nsent while erasing\r\n`,
    );
    c.close();
    expect(reply.code, reply.text).toBe(250);
    // Accepted between two chunks: the erasure had not finished (its audit row comes last).
    expect(await spool.privacy.erasures()).toBe(0);
    expect(erased).toBeNull();

    const r = await erasing;
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      counts: Record<string, number>;
      quiesced: boolean;
      scrubbed: boolean;
    };
    // The message accepted during the erasure came from the sender too: it is gone with the rest.
    expect(report.counts['messages']).toBe(BULK + 1);
    expect(report.quiesced).toBe(true);
    expect(await spool.privacy.erasures()).toBe(1);
    const left = await spool.privacy.candidates(SENDER, null);
    expect(left).toHaveLength(3);
    expect(await spool.privacy.candidates(SENDER, tenantB)).toEqual(left);
  }, 180_000);
});
