import { afterAll, describe, expect, it } from 'vitest';
import { cli, makeTestDir } from '../helpers/daemon.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { ReceivedMessage } from '../helpers/sink.js';
import { submitMany } from '../helpers/submit.js';
import { until } from '../helpers/until.js';

const today = new Date().toISOString().slice(0, 10);

const SOURCES = `[[egress]]
name = "two"
local_address = "127.0.0.2"
ehlo = "two.petrel.test"

[[egress]]
name = "three"
local_address = "127.0.0.3"
ehlo = "three.petrel.test"
warmup_start = "${today}"

[[egress.warmup]]
provider = "warm"
domains = ["warm.test"]
daily = [3, 100]
`;

const peer = (m: ReceivedMessage): string => m.remoteAddress.replace(/^::ffff:/, '');
const subject = (m: ReceivedMessage): string => /^Subject: (.*)$/m.exec(m.body.toString())?.[1] ?? '';

describe('egress sources and their warm-up', () => {
  let r: Routed;
  afterAll(async () => {
    await r?.stop();
  });

  it('sends from the destination’s source, then from the account’s own once the CLI sets it', async () => {
    r = await startRoutedDaemon({
      domains: ['dest.test', 'warm.test'],
      toml: `[delivery]\npoll_interval = "100ms"\n\n[delivery.default]\negress = "two"\n\n${SOURCES}`,
    });
    await submitMany(r.daemon.ports.submission, 'dest.test', 2, 'default', 1);
    await until('2 deliveries', () => r.sink.messages.length >= 2, 15_000);
    for (const m of r.sink.messages) {
      expect(peer(m)).toBe('127.0.0.2');
      expect(m.ehloName).toBe('two.petrel.test');
    }

    const bad = cli(r.t, ['user', 'set', 'app', '--egress', 'nine']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/no \[\[egress\]\] of that name .*there are: two, three/);
    const set = cli(r.t, ['user', 'set', 'app', '--egress', 'three']);
    expect(set.status, set.stderr).toBe(0);
    expect(JSON.parse(cli(r.t, ['--json', 'user', 'show', 'app']).stdout)).toMatchObject({ egress: 'three' });
    // The daemon reads the change within a second of its commit.
    await new Promise((res) => setTimeout(res, 1500));
    await submitMany(r.daemon.ports.submission, 'dest.test', 2, 'own', 1);
    await until('2 more deliveries', () => r.sink.messages.length >= 4, 15_000);
    const own = r.sink.messages.filter((m) => subject(m).startsWith('own '));
    expect(own).toHaveLength(2);
    for (const m of own) {
      expect(peer(m)).toBe('127.0.0.3');
      expect(m.ehloName).toBe('three.petrel.test');
    }
  }, 60_000);

  it('sends a warming source’s daily cap to a provider and keeps the rest, untried, for the next UTC day', async () => {
    await submitMany(r.daemon.ports.submission, 'warm.test', 5, 'warm', 1);
    await until(
      '3 deliveries to warm.test',
      () => r.sink.messages.filter((m) => subject(m).startsWith('warm ')).length >= 3,
      15_000,
    );
    await until(
      '2 held for tomorrow',
      () => {
        const held = cli(r.t, ['--json', 'queue', 'list'])
          .stdout.split('\n')
          .filter((l) => l.includes('warm.test'));
        return held.length === 2 && held.every((l) => l.includes('Warm-up of egress three'));
      },
      10_000,
    );
    // Nothing more goes out meanwhile.
    await new Promise((res) => setTimeout(res, 1000));
    const warm = r.sink.messages.filter((m) => subject(m).startsWith('warm '));
    expect(warm).toHaveLength(3);
    expect(warm.every((m) => peer(m) === '127.0.0.3')).toBe(true);
    const held = cli(r.t, ['--json', 'queue', 'list'])
      .stdout.split('\n')
      .filter((l) => l.includes('warm.test'))
      .map((l) => JSON.parse(l) as { attempts: number; nextAttemptAt: string });
    const midnight = Date.parse(`${today}T00:00:00Z`) + 86_400_000;
    for (const h of held) {
      expect(h.attempts).toBe(0);
      expect(Date.parse(h.nextAttemptAt)).toBe(midnight);
    }
    const status = JSON.parse(cli(r.t, ['--json', 'egress', 'status']).stdout) as unknown[];
    expect(status).toEqual([
      { name: 'two', localAddress: '127.0.0.2', ehlo: 'two.petrel.test', warmupDay: null, providers: [] },
      {
        name: 'three',
        localAddress: '127.0.0.3',
        ehlo: 'three.petrel.test',
        warmupDay: 1,
        providers: [{ provider: 'warm', cap: 3, sentToday: 3 }],
      },
    ]);
  }, 60_000);

  it('refuses a config that names a source it does not define, or a warm-up without its start', () => {
    const unknown = makeTestDir('[delivery.domain."x.test"]\negress = "nowhere"\n');
    try {
      const r1 = cli(unknown, ['config', 'check']);
      expect(r1.status).toBe(1);
      expect(r1.stderr).toMatch(/delivery\.domain\."x\.test"\.egress: no \[\[egress\]\] named "nowhere"/);
    } finally {
      unknown.cleanup();
    }
    const noStart = makeTestDir(
      '[[egress]]\nname = "n"\nlocal_address = "127.0.0.2"\n[[egress.warmup]]\nprovider = "p"\ndaily = [10]\n',
    );
    try {
      const r2 = cli(noStart, ['config', 'check']);
      expect(r2.status).toBe(1);
      expect(r2.stderr).toMatch(/egress\[0\]\.warmup_start: required when warmup is set/);
    } finally {
      noStart.cleanup();
    }
  });
});
