import { describe, expect, it } from 'vitest';
import { createCounterTable, localCounters } from '../../../src/shared/counters.js';

describe('the shared counters', () => {
  it('takes at most max slots of a key over all owners, and never waits', () => {
    const table = createCounterTable({ now: () => 0 });
    expect(table.take('w1', 'k', 2)).toBe(true);
    expect(table.take('w2', 'k', 2)).toBe(true);
    expect(table.take('w1', 'k', 2)).toBe(false);
    expect(table.take('w1', 'other', 1)).toBe(true);
    // An owner holding nothing of the key frees nothing.
    table.give('w3', 'k');
    expect(table.take('w3', 'k', 2)).toBe(false);
    table.give('w2', 'k');
    expect(table.take('w3', 'k', 2)).toBe(true);
  });

  it('gives back every slot of an owner that died, and only those', () => {
    const table = createCounterTable({ now: () => 0 });
    table.take('dead', 'k', 3);
    table.take('dead', 'k', 3);
    table.take('live', 'k', 3);
    table.forget('dead');
    expect(table.take('x', 'k', 3)).toBe(true);
    expect(table.take('x', 'k', 3)).toBe(true);
    expect(table.take('x', 'k', 3)).toBe(false);
  });

  it('counts hits in a window that opens at the first and closes windowMs later', () => {
    let now = 1000;
    const table = createCounterTable({ now: () => now });
    expect(table.hit('k', 100)).toBe(1);
    now += 60;
    expect(table.hit('k', 100)).toBe(2);
    expect(table.count('k')).toBe(2);
    now += 41;
    expect(table.count('k')).toBe(0);
    expect(table.hit('k', 100)).toBe(1);
    table.reset('k');
    expect(table.count('k')).toBe(0);
    // Forgetting an owner leaves the counts: they belong to the client.
    table.hit('k', 100);
    table.forget('w1');
    expect(table.count('k')).toBe(1);
  });

  it('consumes up to max units of a window, counting nothing once it is full', () => {
    let now = 0;
    const table = createCounterTable({ now: () => now });
    expect(table.consume('k', 2, 1000)).toBe(1);
    expect(table.consume('k', 2, 1000)).toBe(2);
    expect(table.consume('k', 2, 1000)).toBeNull();
    expect(table.count('k')).toBe(2);
    now += 1001;
    expect(table.consume('k', 2, 1000)).toBe(1);
  });

  it('raises a count to a floor without lowering it or adding to it', () => {
    let now = 0;
    const table = createCounterTable({ now: () => now });
    expect(table.raise('k', 3, 1000)).toBe(3);
    // A second process seeding from the same stored figure adds nothing.
    expect(table.raise('k', 3, 1000)).toBe(3);
    expect(table.consume('k', 4, 1000)).toBe(4);
    expect(table.raise('k', 2, 1000)).toBe(4);
    expect(table.consume('k', 4, 1000)).toBeNull();
    // The window is the one raise opened: it closes on time.
    now += 1001;
    expect(table.count('k')).toBe(0);
  });

  it('gives a local slot back once however often its release is called', async () => {
    const counters = localCounters({ now: () => 0 });
    const release = await counters.tryTake('k', 1);
    expect(release).not.toBeNull();
    expect(await counters.tryTake('k', 1)).toBeNull();
    release!();
    const again = await counters.tryTake('k', 1);
    release!();
    expect(await counters.tryTake('k', 1)).toBeNull();
    again!();
  });
});
