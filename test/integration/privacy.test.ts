import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { addUser, cli, cliAsync, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { Sink } from '../helpers/sink.js';
import { encodedForms, filesContaining } from '../helpers/grep.js';
import { arfFor } from '../helpers/reports.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

// A distinctive local part, so that a match anywhere can only come from this person's data.
const ALICE = 'zqxalice7@dest.test';
const LOCAL = 'zqxalice7';

// Each message of ENCODED names this address only in an encoded form: no plain byte of it is stored.
const ENCODED_ADDRESS = 'zqxenc9@dest.test';
const MIXED = 'ZqxEnc9@DEST.Test';
const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** Subject → header fields after From/To/Subject, and the body. */
const ENCODED: Record<string, { headers: string[]; body: string }> = {
  b64html: {
    headers: ['MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b1"'],
    body: [
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'See the HTML part.',
      '--b1',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      b64(`<p>Write to <a href="mailto:${ENCODED_ADDRESS}">our colleague</a>.</p>`),
      '--b1--',
    ].join('\r\n'),
  },
  qpsoft: {
    headers: [
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
    ],
    // The soft line break falls inside the address.
    body: `Please write to ${ENCODED_ADDRESS.slice(0, 5)}=\r\n${ENCODED_ADDRESS.slice(5)} today.`,
  },
  rfc2047b: { headers: [`Cc: =?utf-8?b?${b64(ENCODED_ADDRESS)}?= <cc1@else.test>`], body: 'Copied by name.' },
  rfc2047q: {
    headers: [`Cc: =?utf-8?q?${ENCODED_ADDRESS.replace('@', '=40').replace(/\./g, '=2E')}?= <cc2@else.test>`],
    body: 'Copied by name.',
  },
  mixedcase: {
    headers: [
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: base64',
    ],
    body: b64(`Reach ${MIXED} for details.`),
  },
};

describe('privacy erase and export', () => {
  let sink: Sink;
  let t: TestDir;
  let daemon: Daemon;
  let logDir: string;

  const send = async (
    user: string,
    from: string,
    to: string,
    subject: string,
    headers: string[] = [],
    body = `hello ${subject}`,
  ): Promise<{ code: number; text: string }> => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login(user, 'pw');
    await c.command(`MAIL FROM:<${from}>`);
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) {
      c.close();
      return rcpt;
    }
    const r = await c.data(
      [`From: ${from}`, `To: ${to}`, `Subject: ${subject}`, ...headers, '', body, ''].join('\r\n'),
    );
    c.close();
    return r;
  };

  const writeLog = (): void => writeFileSync(join(logDir, 'petrel.log'), daemon.stdoutText());

  let routed: Routed | undefined;
  beforeAll(async () => {
    routed = await startRoutedDaemon({
      domains: ['dest.test', 'example.com', 'else.test'],
      toml: '[delivery]\npoll_interval = "200ms"\n\n[delivery.default]\nretry = ["1h"]\n',
      sink: {
        data: (m) => {
          const subject = /Subject: (\w+)/.exec(m.body.toString())?.[1];
          if (subject === 'deferme') return { code: 451, text: '4.3.0 Try later' };
          if (subject === 'bounceme')
            return { code: 550, text: `5.1.1 <${m.rcptTo[0]}>: mailbox unavailable` };
          return undefined;
        },
      },
      prepare: (dir) => {
        logDir = join(dir.dir, 'log');
        mkdirSync(logDir);
        addUser(dir, 'people', ['dest.test'], 'pw');
      },
    });
    ({ sink, t, daemon } = routed);
  });

  afterAll(async () => {
    await routed?.stop();
  });

  it('exports everything before, erases every byte of the address, keeps it suppressed, and exports only the hash after', async () => {
    // Delivered, deferred and bounced mail to the address, and mail from it.
    expect((await send('app', 'sender@example.com', ALICE, 'delivered')).code).toBe(250);
    expect((await send('app', 'sender@example.com', ALICE, 'deferme')).code).toBe(250);
    expect(
      (await send('app', 'sender@example.com', ALICE, 'promo', ['X-Petrel-Stream: marketing'])).code,
    ).toBe(250);
    expect((await send('people', ALICE, 'bob@else.test', 'fromalice')).code).toBe(250);
    // Last: its 5.1.1 suppresses the address for this account.
    expect((await send('app', 'sender@example.com', ALICE, 'bounceme')).code).toBe(250);
    const delivered = await until(() => sink.messages.find((m) => m.body.includes('Subject: delivered')));
    await until(() => sink.messages.find((m) => m.mailFrom === '' && m.body.toString().includes(ALICE)));
    const promo = await until(() => sink.messages.find((m) => m.body.includes('Subject: promo')));
    // A complaint about the delivered message, and a one-click unsubscribe from the promotion.
    const arf = arfFor(ALICE, delivered.mailFrom);
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    await c.command('EHLO isp.test');
    await c.command('MAIL FROM:<>');
    expect((await c.command('RCPT TO:<fbl@bounces.localhost>')).code).toBe(250);
    expect((await c.data(arf)).code).toBe(250);
    c.close();
    const url = /List-Unsubscribe: <http:\/\/127\.0\.0\.1:8025(\/u\/[A-Za-z0-9_-]+)>/.exec(
      promo.body.toString(),
    )![1]!;
    expect(
      (
        await fetch(`http://127.0.0.1:${daemon.ports.http!}${url}`, {
          method: 'POST',
          body: 'List-Unsubscribe=One-Click',
        })
      ).status,
    ).toBe(200);
    await until(async () => (await send('app', 'sender@example.com', ALICE, 'probe')).code === 550);

    const before = JSON.parse(cli(t, ['privacy', 'export', ALICE]).stdout) as Record<string, unknown[]>;
    const subjects = (before['messages'] as { body: string | null }[])
      .map((m) => /Subject: (\w+)/.exec(m.body ?? '')?.[1])
      .sort();
    expect(subjects).toEqual(
      expect.arrayContaining(['bounceme', 'deferme', 'delivered', 'fromalice', 'promo']),
    );
    expect(before['events']!.length).toBeGreaterThanOrEqual(8);
    expect(before['bounces']!.length).toBeGreaterThanOrEqual(2);
    expect(before['suppressions']!.length).toBeGreaterThanOrEqual(2);

    writeFileSync(join(logDir, 'petrel.log'), daemon.stdoutText());
    const erase = cli(t, ['--json', 'privacy', 'erase', ALICE.toUpperCase()]);
    expect(erase.status, erase.stderr).toBe(0);
    const report = JSON.parse(erase.stdout) as { requestId: string; counts: Record<string, number> };
    expect(report.counts['messages']).toBeGreaterThanOrEqual(6);
    expect(report.counts['suppressionsKeptAsHash']).toBeGreaterThanOrEqual(2);

    // Still refused at RCPT: the suppression is matched by its keyed hash.
    const again = await send('app', 'sender@example.com', ALICE, 'after');
    expect(again.code).toBe(550);
    writeFileSync(join(logDir, 'petrel.log'), daemon.stdoutText());

    expect(
      filesContaining([t.dataDir, logDir], ALICE),
      String(
        filesContaining([t.dataDir, logDir], ALICE).map((f) =>
          readFileSync(f).toString('latin1').toLowerCase().split(ALICE)[0]!.slice(-300),
        ),
      ),
    ).toEqual([]);
    expect(filesContaining([t.dataDir, logDir], LOCAL)).toEqual([]);

    const after = JSON.parse(cli(t, ['privacy', 'export', ALICE]).stdout) as Record<string, unknown[]>;
    expect(after['messages']).toEqual([]);
    expect(after['events']).toEqual([]);
    expect(after['bounces']).toEqual([]);
    expect(after['unsubscribeTokens']).toEqual([]);
    expect(after['suppressions']!.length).toBeGreaterThanOrEqual(2);
    for (const s of after['suppressions'] as { address: unknown; address_hash: string }[]) {
      expect(s.address).toBeNull();
      expect(s.address_hash).toMatch(/^[0-9a-f]{64}$/);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${daemon.ports.http!}/metrics`)).text();
    await until(async () =>
      /petrel_privacy_erasures_total 1/.test(
        await (await fetch(`http://127.0.0.1:${daemon.ports.http!}/metrics`)).text(),
      ),
    );
    expect(metrics).not.toContain('@');
  }, 60_000);

  it('exports and erases each such message and the DSN quoting one, leaving no byte of the address in any form', async () => {
    for (const [subject, m] of Object.entries(ENCODED)) {
      expect(
        (await send('app', 'sender@example.com', 'friend@else.test', subject, m.headers, m.body)).code,
      ).toBe(250);
    }
    // Refused at the next hop: the DSN returns the header block, encoded Cc included.
    const quoted = ENCODED['rfc2047b']!;
    expect(
      (await send('app', 'sender@example.com', 'bouncer@else.test', 'bounceme', quoted.headers, quoted.body))
        .code,
    ).toBe(250);
    await until(
      () =>
        sink.messages.filter((m) => m.rcptTo.includes('friend@else.test')).length ===
        Object.keys(ENCODED).length,
    );
    await until(() => sink.messages.find((m) => m.mailFrom === '' && m.body.includes('bouncer@else.test')));
    writeLog();
    const leftovers = (): Record<string, string[]> =>
      Object.fromEntries(
        encodedForms(ENCODED_ADDRESS, [MIXED])
          .map((form) => [form, filesContaining([t.dataDir, logDir], form)] as const)
          .filter(([, files]) => files.length > 0),
      );
    // The forms the grep looks for are there before: the grep can see them.
    expect(Object.keys(leftovers()).length).toBeGreaterThan(0);

    const before = JSON.parse(cli(t, ['privacy', 'export', ENCODED_ADDRESS]).stdout) as {
      messages: { mailFrom: string; body: string | null; role: string }[];
    };
    const subjects = before.messages.map((m) => /Subject: (\w+)/.exec(m.body ?? '')?.[1]);
    expect(subjects.filter((s) => s !== 'Undelivered').sort()).toEqual(
      [...Object.keys(ENCODED), 'bounceme'].sort(),
    );
    expect(before.messages.filter((m) => m.mailFrom === '')).toHaveLength(1);
    expect(before.messages.every((m) => m.role === 'mentioned')).toBe(true);

    const erase = cli(t, ['--json', 'privacy', 'erase', MIXED]);
    expect(erase.status, erase.stderr).toBe(0);
    const report = JSON.parse(erase.stdout) as { counts: Record<string, number>; scrubbed: boolean };
    expect(report.counts['messages']).toBe(Object.keys(ENCODED).length + 2);
    expect(report.scrubbed).toBe(true);

    writeLog();
    expect(leftovers()).toEqual({});
    const after = JSON.parse(cli(t, ['privacy', 'export', ENCODED_ADDRESS]).stdout) as {
      messages: unknown[];
    };
    expect(after.messages).toEqual([]);

    // Nothing comes back from the WAL or anywhere else when the daemon starts again.
    await daemon.stop();
    daemon = routed!.daemon = await startDaemon(t);
    writeLog();
    expect(leftovers()).toEqual({});
    expect(
      (JSON.parse(cli(t, ['privacy', 'export', ENCODED_ADDRESS]).stdout) as { messages: unknown[] }).messages,
    ).toEqual([]);
  }, 60_000);

  it('aborts or finishes a delivery in flight and makes no later attempt', async () => {
    const slow = await startRoutedDaemon({
      domains: ['slow.test'],
      toml: '[delivery]\npoll_interval = "200ms"\n\n[delivery.default]\nretry = ["200ms"]\n',
      sink: { dataStart: () => undefined, data: () => 'hang' },
    });
    const { sink: slowSink, t: t2, daemon: d2 } = slow;
    try {
      const c = await RawSmtp.connect(d2.ports.submission);
      await c.login('app', 'pw');
      for (const subject of ['inflight', 'queued']) {
        await c.command('MAIL FROM:<sender@example.com>');
        await c.command('RCPT TO:<victim@slow.test>');
        await c.command('RCPT TO:<other@slow.test>');
        expect((await c.data(`From: sender@example.com\r\nSubject: ${subject}\r\n\r\nx\r\n`)).code).toBe(250);
      }
      c.close();
      // The receiver never answers the final dot: the first delivery hangs in flight.
      await until(() => slowSink.messages.length > 0);
      // Not spawnSync: the slow receiver lives in this process and must keep answering.
      const erase = await cliAsync(t2, ['--json', 'privacy', 'erase', 'victim@slow.test', '--wait', '15']);
      expect(erase.status, `${erase.stderr}${erase.stdout}${d2.stdoutText()}`).toBe(0);
      // No row is left that a later attempt could take (retries here come after 200 ms), and
      // nothing is in flight.
      const spool = openSpool(t2.dataDir);
      expect(await spool.messages.count()).toBe(0);
      expect((await spool.queue.counts()).inflight).toBe(0);
      await spool.close();
      const report = JSON.parse(erase.stdout) as { counts: Record<string, number>; quiesced: boolean };
      expect(report.quiesced).toBe(true);
      expect(report.counts['otherRecipientsCancelled']).toBeGreaterThanOrEqual(1);
    } finally {
      await slow.stop();
    }
  }, 60_000);
});
