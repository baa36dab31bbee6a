/** Time source, injected so that tests can move time without fake timers in integration runs. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export const DAY_MS = 86_400_000;

/** The start (epoch ms) of the UTC day that holds `at`: daily quotas count from there. */
export function utcDayStart(at: number): number {
  return at - (at % DAY_MS);
}
