type Check<T> = () => T | undefined | null | false | Promise<T | undefined | null | false>;

/**
 * Polls `fn` every 50 ms until it returns something truthy and resolves with it; rejects naming
 * `what` (when given) after `timeoutMs`. Tests wait on an event this way, never on a fixed sleep.
 */
export async function until<T>(what: string, fn: Check<T>, timeoutMs?: number): Promise<T>;
export async function until<T>(fn: Check<T>, timeoutMs?: number): Promise<T>;
export async function until<T>(a: string | Check<T>, b?: Check<T> | number, c?: number): Promise<T> {
  const what = typeof a === 'string' ? a : 'a condition';
  const fn = typeof a === 'string' ? (b as Check<T>) : a;
  const timeoutMs = (typeof a === 'string' ? c : (b as number | undefined)) ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
