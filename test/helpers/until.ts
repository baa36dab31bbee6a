/**
 * Polls `fn` every 50 ms until it returns something truthy and resolves with it; rejects naming
 * `what` after `timeoutMs`. Tests wait on an event this way, never on a fixed sleep.
 */
export async function until<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
