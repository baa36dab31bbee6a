/** Time source, injected so that tests can move time without fake timers in integration runs. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
