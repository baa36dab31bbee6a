import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { createPools, leaseCap } from '../../../src/queue/pools.js';
import { localThrottle } from '../../../src/queue/throttle.js';
import { resolveShaping } from '../../../src/queue/index.js';

describe('destination pools', () => {
  it('caps a paced destination at a short horizon of its rate and an unpaced one by its connections', () => {
    const config = parseConfig(
      {
        delivery: {
          domain: { 'slow.test': { rate: '1/min' }, 'busy.test': { rate: '600/min', max_connections: 2 } },
        },
      },
      'test',
    );
    const cap = (d: string): number => leaseCap(resolveShaping(config.delivery, d, []).shaping);
    expect(cap('slow.test')).toBe(1);
    expect(cap('busy.test')).toBe(100);
    expect(cap('other.test')).toBe(500);
  });

  it('drops a pool that has had nothing to do for a minute, and keeps a busy one', () => {
    let now = 0;
    const config = parseConfig({}, 'test');
    const clock = { now: () => now };
    const pools = createPools(config.delivery, clock, localThrottle(clock));
    const { shaping } = resolveShaping(config.delivery, 'idle.test', []);
    pools.join('domain:idle.test', shaping, 'idle.test');
    const busy = pools.join('domain:busy.test', shaping, 'busy.test');
    now += 61_000;
    busy.jobs.set('busy.test', []);
    pools.sweep();
    expect(pools.keyOf('idle.test')).toBeUndefined();
    expect(pools.keyOf('busy.test')).toBe('domain:busy.test');
  });
});
