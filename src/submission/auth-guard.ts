import type { SharedCounters } from '../shared/index.js';

/**
 * Per-IP brake on password guessing: each failure slows the next reply a little more, and past
 * `maxFailures` within `windowMs` the IP is refused AUTH until the window has passed. Failures
 * are counted in `counters` (the node's, when it has workers), so every worker sees them all.
 */
export class AuthGuard {
  constructor(
    private readonly counters: SharedCounters,
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  /** True when this IP may not try now. */
  async isBlocked(ip: string): Promise<boolean> {
    return (await this.counters.count(key(ip))) >= this.maxFailures;
  }

  /** Records a failure and returns how long to hold the reply (ms). */
  async recordFailure(ip: string): Promise<number> {
    const count = await this.counters.hit(key(ip), this.windowMs);
    return Math.min(250 * 2 ** Math.min(count - 1, 4), 4000);
  }

  recordSuccess(ip: string): Promise<void> {
    return this.counters.reset(key(ip));
  }
}

const key = (ip: string): string => `auth-failures:${ip}`;
