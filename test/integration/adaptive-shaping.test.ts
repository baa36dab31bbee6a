import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/daemon.js';
import { startRoutedDaemon } from '../helpers/routed.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';
import { submitMany as submitAll } from '../helpers/submit.js';

const submitMany = (port: number, domain: string, count: number, tag: string, sessions = 4) =>
  submitAll(port, domain, count, tag, sessions);

/** Messages per second the receiver accepted between `from` and `to` (ms after `t0`). */
const rateIn = (times: readonly number[], t0: number, from: number, to: number): number =>
  times.filter((t) => t >= t0 + from && t < t0 + to).length / ((to - from) / 1000);

describe('shaping rules react to what the receiver answers', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('slows a destination that answers 421, holds the cut, and ramps back along the curve (receiver timestamps)', async () => {
    const accepted: number[] = [];
    let replies = 0;
    let throttledAt = 0;
    const r = await startRoutedDaemon({
      domains: ['throttling.test'],
      toml: `[delivery]
poll_interval = "100ms"

[delivery.domain."throttling.test"]
rate = "20/s"
max_connections = 2

[shaping]
rules_file = ""

[[shaping.rule]]
name = "test-volume-deferral"
domains = ["throttling.test"]
code = [421]
enhanced = ["4.7.0"]
text = "unexpected volume"
action = "throttle"
duration = "3s"
rate_factor = 0.25
ramp = "2s"
`,
      sink: {
        // A provider's volume deferral after 30 messages, then 250s again.
        data: () => {
          if (++replies === 30) {
            throttledAt = Date.now();
            return {
              code: 421,
              text: '4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume',
            };
          }
          accepted.push(Date.now());
          return undefined;
        },
      },
    });
    cleanups.push(() => r.stop());
    // Queued first and then let go, so the rate before the cut is the destination's, not
    // how fast the submissions came in.
    expect(cli(r.t, ['queue', 'suspend', 'throttling.test']).status).toBe(0);
    await submitMany(r.daemon.ports.submission, 'throttling.test', 130, 'ramp');
    expect(cli(r.t, ['queue', 'resume', 'throttling.test']).status).toBe(0);
    await until('129 deliveries', () => accepted.length >= 129, 40_000);
    expect(throttledAt).toBeGreaterThan(0);
    const before = rateIn(accepted, throttledAt, -1000, 0);
    const held = rateIn(accepted, throttledAt, 500, 3000);
    const ramp = rateIn(accepted, throttledAt, 3300, 5000);
    const after = rateIn(accepted, throttledAt, 5500, 6500);
    // 20/s, then a quarter (5/s) for the 3 s, then half (10/s) for one ramp step, then 20/s.
    expect(before).toBeGreaterThan(14);
    expect(held).toBeGreaterThan(3);
    expect(held).toBeLessThan(7);
    expect(ramp).toBeGreaterThan(7);
    expect(ramp).toBeLessThan(13);
    expect(after).toBeGreaterThan(14);
    // The decision is an event in the delivery log and a metric.
    const events = cli(r.t, ['events', 'tail', '-n', '1000', '--json']);
    expect(events.status, events.stderr).toBe(0);
    expect(events.stdout).toContain('test-volume-deferral');
    const metrics = await (await fetch(`http://127.0.0.1:${r.daemon.ports.http}/metrics`)).text();
    expect(metrics).toMatch(
      /petrel_shaping_decisions_total\{rule="test-volume-deferral",action="throttle"\} 1/,
    );
  }, 60_000);

  it('suspends a destination that blocks, shows the time left, and sends again at once after a reset', async () => {
    let blocked = true;
    const r = await startRoutedDaemon({
      domains: ['blocking.test'],
      toml: `[delivery]
poll_interval = "100ms"

[delivery.domain."blocking.test"]
retry = ["1s"]

[shaping]
rules_file = ""

[[shaping.rule]]
name = "test-ip-blocked"
domains = ["blocking.test"]
code = [550]
text = "blocklisted"
action = "suspend"
duration = "1h"
`,
      sink: {
        rcpt: (address) =>
          blocked && address.startsWith('r0@')
            ? { code: 550, text: '5.7.1 Your IP is blocklisted (S3150)' }
            : undefined,
      },
    });
    cleanups.push(() => r.stop());
    await submitMany(r.daemon.ports.submission, 'blocking.test', 1, 'block', 1);
    await until(
      'the suspension',
      () => cli(r.t, ['shaping', 'status']).stdout.includes('suspend for'),
      10_000,
    );
    const status = JSON.parse(cli(r.t, ['shaping', 'status', '--json']).stdout) as Record<string, unknown>[];
    expect(status).toMatchObject([
      {
        destination: 'domain:blocking.test',
        rule: 'test-ip-blocked',
        action: 'suspend',
        phase: 'action',
        maxConnections: 0,
      },
    ]);
    expect(status[0]!['actionLeftSeconds']).toBeGreaterThan(3500);
    expect(cli(r.t, ['queue', 'stats']).stdout).toMatch(/shaping domain:blocking\.test: suspend, \d+s left/);
    // Held meanwhile: mail for it waits in the queue, unsent.
    blocked = false;
    await submitMany(r.daemon.ports.submission, 'blocking.test', 3, 'held', 1);
    await new Promise((res) => setTimeout(res, 1500));
    expect(r.sink.messages.length).toBe(0);
    const reset = cli(r.t, ['shaping', 'reset', 'blocking.test']);
    expect(reset.status, reset.stderr).toBe(0);
    await until('the held mail delivered', () => r.sink.messages.length >= 3, 10_000);
    expect(cli(r.t, ['shaping', 'reset', 'blocking.test']).status).toBe(1);
  }, 60_000);

  it('ends at once a recipient whose 4xx a rule says is permanent, with one DSN', async () => {
    const r = await startRoutedDaemon({
      domains: ['dest.test', 'example.com'],
      toml: `[delivery]
poll_interval = "100ms"

[shaping]
rules_file = ""

[[shaping.rule]]
name = "test-disabled-account"
domains = ["dest.test"]
code = [452]
text = "account disabled"
action = "bounce"
`,
      sink: {
        rcpt: (address) =>
          address.startsWith('gone@')
            ? { code: 452, text: '4.2.2 This account disabled for good' }
            : undefined,
      },
    });
    cleanups.push(() => r.stop());
    const c = await RawSmtp.connect(r.daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<gone@dest.test>');
    expect((await c.data('From: sender@example.com\r\nSubject: gone\r\n\r\nx\r\n')).code).toBe(250);
    c.close();
    await until(
      'the DSN',
      () => r.sink.messages.some((m) => m.rcptTo.includes('sender@example.com')),
      10_000,
    );
    const list = cli(r.t, ['queue', 'list', '--state', 'bounced', '--json']);
    expect(list.stdout).toContain('gone@dest.test');
    // Nothing of it waits for a retry.
    expect(cli(r.t, ['queue', 'list', '--json']).stdout.trim()).toBe('');
  }, 60_000);
});
