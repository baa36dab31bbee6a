import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, type Daemon, type TestDir } from '../helpers/daemon.js';
import { arfFor } from '../helpers/reports.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { ReceivedMessage, Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

describe("the complaint-rate guard pauses an account's marketing mail", () => {
  let routed: Routed | undefined;
  let sink: Sink;
  let t: TestDir;
  let daemon: Daemon;

  /** Submits one message; the reply at RCPT if it refused, else at the end of DATA. */
  const send = async (to: string, subject: string, stream: 'marketing' | 'transactional') => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) {
      c.close();
      return rcpt;
    }
    const r = await c.data(
      [
        `From: sender@example.com`,
        `To: ${to}`,
        `Subject: ${subject}`,
        `X-Petrel-Stream: ${stream}`,
        '',
        'hi',
        '',
      ].join('\r\n'),
    );
    c.close();
    return r;
  };
  const delivered = (subject: string): Promise<ReceivedMessage> =>
    until(() => sink.messages.find((m) => m.body.includes(`Subject: ${subject}\r\n`)));
  const report = async (rcptTo: string, message: string): Promise<number> => {
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    await c.command('EHLO fbl.dest.test');
    await c.command('MAIL FROM:<>');
    await c.command(`RCPT TO:<${rcptTo}>`);
    const r = await c.data(message);
    c.close();
    return r.code;
  };

  beforeAll(async () => {
    routed = await startRoutedDaemon({
      domains: ['dest.test', 'example.com'],
      toml: `[delivery]
poll_interval = "200ms"

[guard]
complaint_rate = 0.1
min_deliveries = 10
interval = "200ms"
`,
    });
    ({ sink, t, daemon } = routed);
  });
  afterAll(async () => {
    await routed?.stop();
  });

  it('pauses marketing mail after too many complaints, lets transactional mail through, and resumes on the operator’s word', async () => {
    for (let i = 0; i < 10; i++)
      expect((await send(`u${i}@dest.test`, `promo ${i}`, 'marketing')).code).toBe(250);
    const first = await Promise.all([0, 1].map((i) => delivered(`promo ${i}`)));
    for (let i = 2; i < 10; i++) await delivered(`promo ${i}`);
    // One complaint in ten deliveries is the line itself, not over it: nothing happens.
    expect(await report('fbl@bounces.localhost', arfFor('u0@dest.test', first[0]!.mailFrom))).toBe(250);
    await new Promise((r) => setTimeout(r, 800));
    expect((await send('u20@dest.test', 'still fine', 'marketing')).code).toBe(250);
    await delivered('still fine');
    expect(await report('fbl@bounces.localhost', arfFor('u1@dest.test', first[1]!.mailFrom))).toBe(250);
    // Two in eleven is: new marketing mail waits, with a reply that says to try later.
    const refused = await until(async () => {
      const r = await send('u30@dest.test', 'refused', 'marketing');
      return r.code === 451 && r;
    }, 10_000);
    expect(refused.text).toMatch(/^451 4\.7\.1 .*paused/);
    expect((await send('u31@dest.test', 'receipt', 'transactional')).code).toBe(250);
    await delivered('receipt');
    const events = cli(t, ['events', 'tail', '-n', '1000', '--json']).stdout;
    expect(events).toMatch(/"paused"/);
    const metrics = await (await fetch(`http://127.0.0.1:${daemon.ports.http}/metrics`)).text();
    expect(metrics).toMatch(/petrel_account_pauses_total\{account="app",reason="complaint_rate"\} 1/);

    const resume = cli(t, ['user', 'resume', 'app']);
    expect(resume.status, resume.stderr).toBe(0);
    const again = await until(async () => {
      const r = await send('u32@dest.test', 'welcome back', 'marketing');
      return r.code === 250 && r;
    }, 10_000);
    expect(again.code).toBe(250);
    await delivered('welcome back');
    // Counted afresh from the resume: the old complaints pause nothing again.
    await new Promise((r) => setTimeout(r, 800));
    expect((await send('u33@dest.test', 'and again', 'marketing')).code).toBe(250);
    expect(cli(t, ['user', 'resume', 'app']).status).toBe(1);
  }, 60_000);
});
