import type { Clock } from './clock.js';

/**
 * Per-key counters a listener shares with every other process of its node (workers): the
 * sessions a client address holds, the AUTH failures it made, the recipients an account sent. With one process they are its
 * own; with a node of workers the primary keeps them, so a client gets the limit once per node
 * and not once per worker. Keys are the caller's (prefix them with what they count).
 */
export interface SharedCounters {
  /**
   * Takes one of `max` slots of `key` now, or refuses: it never waits. Resolves with the function
   * that gives the slot back (idempotent; call it when the session ends), or null when all
   * `max` are held.
   */
  tryTake(key: string, max: number): Promise<(() => void) | null>;
  /**
   * Counts one event of `key` and resolves with the count in its window. The window opens at the
   * first event and lasts `windowMs`; the count is 0 again once it has passed.
   */
  hit(key: string, windowMs: number): Promise<number>;
  /**
   * Counts one event of `key` only while its window holds fewer than `max`, in one step, so that
   * processes racing for the last unit never both get it. Resolves with the count including this
   * event, or null when the window is full (nothing counted). The window is hit's.
   */
  consume(key: string, max: number, windowMs: number): Promise<number | null>;
  /**
   * Lifts the count of `key` to at least `floor` (opening a window of `windowMs` if none is
   * open) and resolves with the count. Idempotent, so every process may seed a count from what
   * it finds stored without adding to what the others counted.
   */
  raise(key: string, floor: number, windowMs: number): Promise<number>;
  /** The count of `key` in its open window (0 when none is open). */
  count(key: string): Promise<number>;
  /** Clears the count of `key`. */
  reset(key: string): Promise<void>;
}

/** The state behind SharedCounters, for one process or for a node's primary on its workers' behalf. */
export interface CounterTable {
  /** Takes a slot of `key` for `owner` if fewer than `max` are held; false otherwise. */
  take(owner: string, key: string, max: number): boolean;
  /** Gives back one slot of `key` held by `owner`. */
  give(owner: string, key: string): void;
  /** Gives back every slot of `owner` (it died). Counts stay: they are the client's, not the owner's. */
  forget(owner: string): void;
  hit(key: string, windowMs: number): number;
  consume(key: string, max: number, windowMs: number): number | null;
  raise(key: string, floor: number, windowMs: number): number;
  count(key: string): number;
  reset(key: string): void;
}

interface Window {
  count: number;
  readonly firstAt: number;
  readonly windowMs: number;
}

/** Beyond this many open windows, the expired ones are swept out when the next one opens. */
const MAX_WINDOWS = 100_000;

export function createCounterTable(clock: Clock): CounterTable {
  /** Held slots by key, then by owner. */
  const slots = new Map<string, Map<string, number>>();
  const totals = new Map<string, number>();
  const windows = new Map<string, Window>();

  const giveBack = (owner: string, key: string, n: number): void => {
    const held = slots.get(key);
    const mine = held?.get(owner) ?? 0;
    const back = Math.min(mine, n);
    if (!held || back === 0) return;
    if (mine === back) held.delete(owner);
    else held.set(owner, mine - back);
    if (held.size === 0) slots.delete(key);
    const left = (totals.get(key) ?? back) - back;
    if (left <= 0) totals.delete(key);
    else totals.set(key, left);
  };

  const current = (key: string): Window | undefined => {
    const w = windows.get(key);
    if (w && clock.now() - w.firstAt > w.windowMs) {
      windows.delete(key);
      return undefined;
    }
    return w;
  };

  const open = (key: string, windowMs: number): Window => {
    let w = current(key);
    if (!w) {
      windows.set(key, (w = { count: 0, firstAt: clock.now(), windowMs }));
      if (windows.size > MAX_WINDOWS) {
        const now = clock.now();
        for (const [k, x] of windows) if (now - x.firstAt > x.windowMs) windows.delete(k);
      }
    }
    return w;
  };

  return {
    take(owner, key, max) {
      const open = totals.get(key) ?? 0;
      if (open >= max) return false;
      totals.set(key, open + 1);
      let held = slots.get(key);
      if (!held) slots.set(key, (held = new Map()));
      held.set(owner, (held.get(owner) ?? 0) + 1);
      return true;
    },
    give: (owner, key) => giveBack(owner, key, 1),
    forget(owner) {
      for (const [key, held] of [...slots]) giveBack(owner, key, held.get(owner) ?? 0);
    },
    hit(key, windowMs) {
      const w = open(key, windowMs);
      w.count += 1;
      return w.count;
    },
    consume(key, max, windowMs) {
      if ((current(key)?.count ?? 0) >= max) return null;
      const w = open(key, windowMs);
      w.count += 1;
      return w.count;
    },
    raise(key, floor, windowMs) {
      const w = open(key, windowMs);
      w.count = Math.max(w.count, floor);
      return w.count;
    },
    count: (key) => current(key)?.count ?? 0,
    reset(key) {
      windows.delete(key);
    },
  };
}

/** The counters of a single process: its own table, no one else to agree with. */
export function localCounters(clock: Clock): SharedCounters {
  const table = createCounterTable(clock);
  return {
    tryTake(key, max) {
      if (!table.take('self', key, max)) return Promise.resolve(null);
      let done = false;
      return Promise.resolve(() => {
        if (done) return;
        done = true;
        table.give('self', key);
      });
    },
    hit: (key, windowMs) => Promise.resolve(table.hit(key, windowMs)),
    consume: (key, max, windowMs) => Promise.resolve(table.consume(key, max, windowMs)),
    raise: (key, floor, windowMs) => Promise.resolve(table.raise(key, floor, windowMs)),
    count: (key) => Promise.resolve(table.count(key)),
    reset(key) {
      table.reset(key);
      return Promise.resolve();
    },
  };
}
