import { describe, expect, it } from 'vitest';
import { createThrottleTable, localThrottle } from '../../../src/queue/throttle.js';

describe('the node throttle', () => {
  it('grants at most max slots of a key, in order, and hands a freed slot to the next waiter', () => {
    const table = createThrottleTable({ now: () => 0 });
    const granted: string[] = [];
    expect(table.acquire('w1', 'k', 2, () => granted.push('a'))).toBe(true);
    expect(table.acquire('w2', 'k', 2, () => granted.push('b'))).toBe(true);
    expect(table.acquire('w2', 'k', 2, () => granted.push('c'))).toBe(false);
    expect(table.acquire('w1', 'k', 2, () => granted.push('d'))).toBe(false);
    // Other keys are not held up.
    expect(table.acquire('w1', 'other', 1, () => undefined)).toBe(true);
    table.release('w1', 'k');
    expect(granted).toEqual(['c']);
    table.release('w2', 'k');
    expect(granted).toEqual(['c', 'd']);
  });

  it('gives back every slot of an owner that died and skips its waiters', () => {
    const table = createThrottleTable({ now: () => 0 });
    const granted: string[] = [];
    table.acquire('dead', 'k', 1, () => undefined);
    table.acquire('dead', 'k', 1, () => granted.push('dead-waiter'));
    table.acquire('live', 'k', 1, () => granted.push('live'));
    // A release by an owner holding nothing frees nothing.
    table.release('live', 'k');
    expect(granted).toEqual([]);
    table.forget('dead');
    expect(granted).toEqual(['live']);
  });

  it('withdraws a cancelled waiter', () => {
    const table = createThrottleTable({ now: () => 0 });
    const granted: string[] = [];
    table.acquire('a', 'k', 1, () => undefined);
    const grant = (): void => void granted.push('b');
    table.acquire('b', 'k', 1, grant);
    table.acquire('c', 'k', 1, () => granted.push('c'));
    expect(table.cancel(grant)).toBe(true);
    table.release('a', 'k');
    expect(granted).toEqual(['c']);
  });

  it('books sends of every sender at the rate, one after another', () => {
    let now = 1000;
    const table = createThrottleTable({ now: () => now });
    expect([table.reserve('k', 10), table.reserve('k', 10), table.reserve('k', 10)]).toEqual([
      1000, 1100, 1200,
    ]);
    now = 5000;
    // An idle key starts afresh rather than owing a burst.
    expect(table.reserve('k', 10)).toBe(5000);
  });

  it('locally: an aborted wait resolves null and takes no slot', async () => {
    const throttle = localThrottle({ now: () => 0 });
    const first = await throttle.acquire('k', 1, new AbortController().signal);
    const stop = new AbortController();
    const waiting = throttle.acquire('k', 1, stop.signal);
    stop.abort();
    expect(await waiting).toBeNull();
    first!();
    expect(await throttle.acquire('k', 1, new AbortController().signal)).toBeTypeOf('function');
  });
});
