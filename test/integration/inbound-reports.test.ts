import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { arfFor, dsnFor } from '../helpers/reports.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

describe('only well-formed reports suppress; the rest are counted as unparsed', () => {
  let sink: Sink;
  let t: TestDir;
  let daemon: Daemon;
  let spool: Spool;

  /** Sends one message to `to` and returns the VERP return path it was delivered with. */
  const returnPathOf = async (to: string): Promise<string> => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    expect((await c.command(`RCPT TO:<${to}>`)).code).toBe(250);
    expect(
      (await c.data(`From: sender@example.com\r\nTo: ${to}\r\nSubject: to ${to}\r\n\r\nhello\r\n`)).code,
    ).toBe(250);
    c.close();
    const msg = await until(`delivery to ${to}`, () => sink.messages.find((m) => m.rcptTo.includes(to)));
    return msg.mailFrom;
  };

  const report = async (rcptTo: string, message: string): Promise<number> => {
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    await c.command('EHLO mx.dest.test');
    await c.command('MAIL FROM:<>');
    expect((await c.command(`RCPT TO:<${rcptTo}>`)).code).toBe(250);
    const r = await c.data(message);
    c.close();
    return r.code;
  };

  const suppressed = async (address: string): Promise<boolean> =>
    (await spool.suppressions.list({})).some((e) => e.address === address);

  const unparsedEvent = (why: string) =>
    until(`an unparsed event (${why})`, async () =>
      (await spool.events.tail(1000)).find((e) => e.type === 'unparsed' && e.details?.['why'] === why),
    );

  const metric = async (category: string, reason: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${daemon.ports.http!}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`petrel_bounces_total{category="${category}",reason="${reason}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };

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
    await spool?.close();
    await daemon?.stop();
    await sink?.close();
    t?.cleanup();
  });

  const malformedDsns: [string, string, (to: string, rp: string) => string][] = [
    [
      'a DSN without Final-Recipient',
      'no-final-recipient',
      (to, rp) =>
        dsnFor(to, rp).replace(/^Final-Recipient: .*\r\n/m, `Original-Recipient: rfc822; ${to}\r\n`),
    ],
    ['a DSN with Status: 550', 'bad-status', (to, rp) => dsnFor(to, rp, '550')],
    [
      'a multipart/mixed bounce without a report type',
      'no-report-type',
      (to, rp) => dsnFor(to, rp).replace('multipart/report; report-type=delivery-status', 'multipart/mixed'),
    ],
  ];

  for (const [what, why, build] of malformedDsns) {
    it(`does not suppress on ${what}, and counts it as unparsed (RELIABILITY 36)`, async () => {
      const to = `${why}@dest.test`;
      const rp = await returnPathOf(to);
      expect(await report(rp, build(to, rp))).toBe(250);
      const event = await unparsedEvent(why);
      expect(event.recipient).toBe(to);
      expect(await suppressed(to)).toBe(false);
      expect(await metric('unparsed', why)).toBeGreaterThanOrEqual(1);
    });
  }

  const malformedArfs: [string, string, (to: string, rp: string) => string][] = [
    [
      'an ARF without Feedback-Type and Version',
      'no-feedback-type',
      (to, rp) => arfFor(to, rp).replace('Feedback-Type: abuse\r\n', '').replace('Version: 1\r\n', ''),
    ],
    [
      'an ARF with an unknown Feedback-Type',
      'unknown-feedback-type',
      (to, rp) => arfFor(to, rp).replace('Feedback-Type: abuse', 'Feedback-Type: hated-it'),
    ],
  ];

  for (const [what, why, build] of malformedArfs) {
    it(`does not suppress on ${what}, and counts it as unparsed (RELIABILITY 37)`, async () => {
      const to = `${why}@dest.test`;
      const rp = await returnPathOf(to);
      expect(await report('fbl@bounces.localhost', build(to, rp))).toBe(250);
      const event = await unparsedEvent(why);
      expect(event.recipient).toBe(to);
      expect(await suppressed(to)).toBe(false);
      expect(await metric('unparsed', why)).toBeGreaterThanOrEqual(1);
    });
  }

  it('still suppresses on a well-formed DSN and a well-formed ARF', async () => {
    const hard = 'hard@dest.test';
    const rp1 = await returnPathOf(hard);
    expect(await report(rp1, dsnFor(hard, rp1))).toBe(250);
    await until('the DSN suppressed', () => suppressed(hard));
    const complainer = 'complainer@dest.test';
    const rp2 = await returnPathOf(complainer);
    expect(await report('fbl@bounces.localhost', arfFor(complainer, rp2))).toBe(250);
    await until('the ARF suppressed', () => suppressed(complainer));
    const entries = await spool.suppressions.list({});
    expect(entries.find((e) => e.address === hard)?.reason).toBe('hard:userunknown');
    expect(entries.find((e) => e.address === complainer)?.reason).toBe('complaint:abuse');
  });

  it('changes nothing for a well-formed report sent to a forged or foreign return path (RELIABILITY 38)', async () => {
    const victim = 'victim@dest.test';
    const rp = await returnPathOf('bystander@dest.test');
    const forged = rp.replace(/[0-9a-f]{4}@/, (m) => `${m[0] === 'a' ? 'b' : 'a'}${m.slice(1)}`);
    // The ARF names the victim's forged return path only; the DSN for the victim rides on the bystander's.
    expect(await report('fbl@bounces.localhost', arfFor(victim, forged))).toBe(250);
    expect(await report(rp, dsnFor(victim, rp))).toBe(250);
    await until(
      'both reports handled',
      () =>
        daemon.logs.some((l) => l.msg === 'report maps to no valid return path; no suppression') &&
        daemon.logs.some((l) => l.msg === 'report needs no action'),
    );
    expect(await suppressed(victim)).toBe(false);
    expect(await suppressed('bystander@dest.test')).toBe(false);
  });
});
