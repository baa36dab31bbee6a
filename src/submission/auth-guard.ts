import type { Clock } from '../shared/index.js';

interface Failures {
  count: number;
  firstAt: number;
}

/**
 * Per-IP brake on password guessing: each failure slows the next reply a little more, and past
 * `maxFailures` within `windowMs` the IP is refused AUTH until the window has passed.
 */
export class AuthGuard {
  readonly #failures = new Map<string, Failures>();

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {}

  /** True when this IP may not try now. */
  isBlocked(ip: string): boolean {
    const f = this.#current(ip);
    return f !== undefined && f.count >= this.maxFailures;
  }

  /** Records a failure and returns how long to hold the reply (ms). */
  recordFailure(ip: string): number {
    const f = this.#current(ip) ?? { count: 0, firstAt: this.clock.now() };
    f.count++;
    this.#failures.set(ip, f);
    if (this.#failures.size > 100_000) this.#prune();
    return Math.min(250 * 2 ** Math.min(f.count - 1, 4), 4000);
  }

  recordSuccess(ip: string): void {
    this.#failures.delete(ip);
  }

  #current(ip: string): Failures | undefined {
    const f = this.#failures.get(ip);
    if (f && this.clock.now() - f.firstAt > this.windowMs) {
      this.#failures.delete(ip);
      return undefined;
    }
    return f;
  }

  #prune(): void {
    const now = this.clock.now();
    for (const [ip, f] of this.#failures) if (now - f.firstAt > this.windowMs) this.#failures.delete(ip);
  }
}
