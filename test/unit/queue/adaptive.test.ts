import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  loadShapingRules,
  parseConfig,
  readShapingRules,
  SHIPPED_SHAPING_RULES,
} from '../../../src/config/index.js';
import { compileRules, createAdaptive, decisionState, shapedBy } from '../../../src/queue/adaptive.js';
import type { Outcome } from '../../../src/queue/ports.js';
import type { Shaping } from '../../../src/queue/shaping.js';

const base: Shaping = {
  maxConnections: 8,
  messagesPerConnection: 100,
  ratePerSecond: 40,
  retry: [60_000],
  maxAge: 86_400_000,
  tls: 'may',
  egress: null,
};

const reply = (code: number, enhanced: string, text: string, mx = 'mx1.example.net'): Outcome => ({
  kind: code >= 500 ? 'failed' : 'deferred',
  reply: { code, enhanced, text },
  mx,
});

function rules(toml: object[]) {
  const config = parseConfig({ shaping: { rules_file: '', rule: toml } }, 'test');
  return compileRules(loadShapingRules(config.shaping), 60_000);
}

describe('shaping rules', () => {
  let dir = '';
  afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('ships rules for the big providers that all parse, each citing its source', () => {
    const shipped = readShapingRules(SHIPPED_SHAPING_RULES);
    expect(shipped.length).toBeGreaterThanOrEqual(20);
    for (const r of shipped) expect(r.source, r.name).toMatch(/^https?:\/\//);
    const where = shipped.flatMap((r) => [...r.mx, ...r.domains]).join(' ');
    for (const provider of [
      'google.com',
      'outlook.com',
      'yahoodns.net',
      'icloud.com',
      'comcast.net',
      'gmx',
      'orange.fr',
      'mail.ru',
    ])
      expect(where, provider).toContain(provider);
  });

  it('refuses a rule that cannot act, naming it', () => {
    expect(() =>
      rules([{ name: 'x', mx: ['a.test'], code: [421], action: 'throttle', duration: '1m' }]),
    ).toThrow(/rule x: throttle needs/);
    expect(() => rules([{ name: 'y', code: [421], action: 'bounce' }])).toThrow(
      /rule y: needs mx or domains/,
    );
    expect(() => rules([{ name: 'z', mx: ['a.test'], text: '(', action: 'bounce' }])).toThrow(
      /not a regular expression/,
    );
    dir = mkdtempSync(join(tmpdir(), 'petrel-rules-'));
    const file = join(dir, 'rules.toml');
    writeFileSync(file, '[[rule]]\nname = "a"\nmx = ["a.test"]\ncode = [421]\naction = "suspend"\n');
    expect(() => readShapingRules(file)).toThrow(/rules\.toml: .*suspend needs a duration/);
  });

  it("puts the operator's rules first, and one of the same name replaces the file's", () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-rules-'));
    const file = join(dir, 'rules.toml');
    writeFileSync(
      file,
      '[[rule]]\nname = "shared"\nmx = ["a.test"]\ncode = [421]\naction = "bounce"\n\n[[rule]]\nname = "other"\nmx = ["a.test"]\ncode = [450]\naction = "bounce"\n',
    );
    const config = parseConfig(
      {
        shaping: {
          rules_file: file,
          rule: [{ name: 'shared', mx: ['a.test'], code: [421], action: 'suspend', duration: '5m' }],
        },
      },
      'test',
    );
    expect(loadShapingRules(config.shaping).map((r) => [r.name, r.action])).toEqual([
      ['shared', 'suspend'],
      ['other', 'bounce'],
    ]);
  });

  it('matches code, enhanced code (or its prefix) and text together, from the MX suffix or the domain', () => {
    const [r] = rules([
      {
        name: 'g',
        mx: ['google.com'],
        code: [421],
        enhanced: ['4.7.'],
        text: 'unusual rate',
        action: 'bounce',
      },
    ]);
    const ok = reply(
      421,
      '4.7.28',
      'Our system has detected an UNUSUAL RATE of mail',
      'alt1.aspmx.l.google.com',
    );
    const adaptive = createAdaptive([r!], { now: () => 0 });
    expect(adaptive.observe('mx:google.com', 'example.org', ok).rule?.name).toBe('g');
    for (const miss of [
      { ...ok, mx: 'mx.notgoogle.com' },
      { ...ok, reply: { ...ok.reply, code: 451 } },
      { ...ok, reply: { ...ok.reply, enhanced: '4.2.1' } },
      { ...ok, reply: { ...ok.reply, text: 'try later' } },
      { ...ok, kind: 'delivered' as const },
    ])
      expect(adaptive.observe('mx:google.com', 'example.org', miss).rule).toBeNull();
    const [d] = rules([{ name: 'd', domains: ['gmail.com'], code: [421], action: 'bounce' }]);
    expect(
      createAdaptive([d!], { now: () => 0 }).observe('x', 'Gmail.com', reply(421, '4.7.0', 'x', 'mx.other'))
        .rule?.name,
    ).toBe('d');
  });

  it('turns a deferral a bounce rule names into a failure, and decides nothing for the destination', () => {
    const adaptive = createAdaptive(
      rules([{ name: 'b', mx: ['example.net'], code: [452], action: 'bounce' }]),
      {
        now: () => 0,
      },
    );
    const seen = adaptive.observe('mx:example.net', 'x.test', reply(452, '4.2.2', 'mailbox full for good'));
    expect(seen.outcome.kind).toBe('failed');
    expect(seen.decision).toBeNull();
    expect(adaptive.shape('mx:example.net', base)).toBe(base);
  });

  it('throttles for the duration, then doubles the limits every ramp step back to the configured ones', () => {
    let now = 1_000_000;
    const adaptive = createAdaptive(
      rules([
        {
          name: 't',
          mx: ['example.net'],
          code: [421],
          action: 'throttle',
          duration: '10m',
          connections_factor: 0.25,
          rate_factor: 0.125,
          ramp: '5m',
        },
      ]),
      { now: () => now },
    );
    const seen = adaptive.observe('mx:example.net', 'x.test', reply(421, '4.7.0', 'slow down'));
    expect(seen.decision).toMatchObject({ rule: 't', action: 'throttle', until: now + 600_000 });
    const at = (ms: number) => {
      now = 1_000_000 + ms;
      const s = adaptive.shape('mx:example.net', base);
      return [s.maxConnections, s.ratePerSecond];
    };
    expect(at(0)).toEqual([2, 5]);
    expect(at(599_999)).toEqual([2, 5]);
    expect(at(600_000)).toEqual([4, 10]);
    expect(at(900_000)).toEqual([8, 20]);
    expect(at(1_200_000)).toEqual([8, 40]);
    expect(decisionState(seen.decision!, now, 40).phase).toBe('done');
    // A match during the action changes nothing; one during the ramp starts over.
    now = 1_000_000;
    const fresh = createAdaptive(adaptive.rules, { now: () => now });
    expect(fresh.observe('mx:example.net', 'x.test', reply(421, '4.7.0', 'a')).decision).not.toBeNull();
    now += 60_000;
    expect(fresh.observe('mx:example.net', 'x.test', reply(421, '4.7.0', 'b')).decision).toBeNull();
    now += 600_000;
    const again = fresh.observe('mx:example.net', 'x.test', reply(421, '4.7.0', 'c')).decision;
    expect(again).toMatchObject({ startedAt: now, until: now + 600_000 });
    expect(fresh.shape('mx:example.net', base).maxConnections).toBe(2);
  });

  it('suspends (nothing sent), then ramps from a sixteenth; a rate cap over an unlimited rate is lifted after four doublings', () => {
    const suspend = shapedBy(
      base,
      {
        destination: 'd',
        rule: 's',
        action: 'suspend',
        reply: '',
        connectionsFactor: 1 / 16,
        rateFactor: 1 / 16,
        rateCap: null,
        startedAt: 0,
        until: 1000,
        rampMs: 100,
      },
      500,
    );
    expect(suspend.maxConnections).toBe(0);
    const capped = {
      destination: 'd',
      rule: 'c',
      action: 'throttle' as const,
      reply: '',
      connectionsFactor: 1,
      rateFactor: 1,
      rateCap: 1,
      startedAt: 0,
      until: 1000,
      rampMs: 100,
    };
    const unlimited = { ...base, ratePerSecond: Infinity };
    expect(shapedBy(unlimited, capped, 999).ratePerSecond).toBe(1);
    expect(shapedBy(unlimited, capped, 1000).ratePerSecond).toBe(2);
    expect(shapedBy(unlimited, capped, 1250).ratePerSecond).toBe(8);
    expect(shapedBy(unlimited, capped, 1300).ratePerSecond).toBe(Infinity);
  });

  it("keeps its own decision until stored, but takes the spool's word once it is", () => {
    let now = 0;
    const adaptive = createAdaptive(
      rules([{ name: 's', mx: ['example.net'], code: [421], action: 'suspend', duration: '1h' }]),
      { now: () => now },
    );
    const d = adaptive.observe('mx:example.net', 'x.test', reply(421, '4.7.0', 'go away')).decision!;
    adaptive.load([]);
    expect(adaptive.decision('mx:example.net')).toBe(d);
    adaptive.settled(d);
    adaptive.load([]);
    expect(adaptive.decision('mx:example.net')).toBeUndefined();
    now = 1;
    expect(adaptive.shape('mx:example.net', base)).toBe(base);
  });
});
