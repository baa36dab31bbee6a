import { describe, expect, it } from 'vitest';
import { localCounters } from '../../../src/shared/counters.js';
import { AuthGuard } from '../../../src/submission/auth-guard.js';

describe('the AUTH failure brake', () => {
  it('slows each failure more, blocks at max failures, and lets go after the window', async () => {
    let now = 0;
    const clock = { now: () => now };
    const guard = new AuthGuard(localCounters(clock), 5, 60_000);
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      expect(await guard.isBlocked('192.0.2.1')).toBe(i >= 5);
      delays.push(await guard.recordFailure('192.0.2.1'));
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 4000]);
    expect(await guard.isBlocked('192.0.2.2')).toBe(false);
    now += 60_001;
    expect(await guard.isBlocked('192.0.2.1')).toBe(false);
    expect(await guard.recordFailure('192.0.2.1')).toBe(250);
  });

  it('forgets the failures of an address that then authenticates', async () => {
    const guard = new AuthGuard(localCounters({ now: () => 0 }), 2, 60_000);
    await guard.recordFailure('192.0.2.1');
    await guard.recordSuccess('192.0.2.1');
    await guard.recordFailure('192.0.2.1');
    expect(await guard.isBlocked('192.0.2.1')).toBe(false);
  });
});
