import { describe, expect, it } from 'vitest';
import { PerIpLimit } from '../../../src/listener/limits.js';
import { localCounters, type SharedCounters } from '../../../src/shared/counters.js';

describe('the per-IP session limit', () => {
  it('admits max sessions of an address; a refused one closing frees no slot', async () => {
    const limit = new PerIpLimit(localCounters({ now: () => 0 }), 'test', 2);
    expect(await limit.admit('a', '192.0.2.1')).toBe(true);
    expect(await limit.admit('b', '192.0.2.1')).toBe(true);
    expect(await limit.admit('c', '192.0.2.1')).toBe(false);
    expect(await limit.admit('d', '192.0.2.2')).toBe(true);
    limit.release('c');
    expect(await limit.admit('e', '192.0.2.1')).toBe(false);
    limit.release('a');
    limit.release('a');
    expect(await limit.admit('f', '192.0.2.1')).toBe(true);
    expect(await limit.admit('g', '192.0.2.1')).toBe(false);
  });

  it('keeps the caps of different scopes apart on the same counters', async () => {
    const counters = localCounters({ now: () => 0 });
    const one = new PerIpLimit(counters, 'one', 1);
    const two = new PerIpLimit(counters, 'two', 1);
    expect(await one.admit('a', '192.0.2.1')).toBe(true);
    expect(await two.admit('b', '192.0.2.1')).toBe(true);
  });

  it('gives the slot straight back when the session closed while its admission was decided', async () => {
    const local = localCounters({ now: () => 0 });
    let grant: () => void = () => undefined;
    const slow: SharedCounters = {
      ...local,
      tryTake: (key, max) =>
        new Promise((resolve) => {
          grant = () => void local.tryTake(key, max).then(resolve);
        }),
    };
    const limit = new PerIpLimit(slow, 'test', 1);
    const admitted = limit.admit('a', '192.0.2.1');
    limit.release('a');
    grant();
    expect(await admitted).toBe(false);
    expect(await local.tryTake('test:192.0.2.1', 1)).not.toBeNull();
  });
});
