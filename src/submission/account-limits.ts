import type { Account, AccountStore } from '../spool/index.js';
import { DAY_MS, utcDayStart, type Clock, type SharedCounters } from '../shared/index.js';

/** Which limit refused a recipient. */
export type LimitReason = 'rate' | 'daily';

/** An account's recipients counted today against its daily quota. */
export interface AccountUsage {
  readonly account: string;
  readonly used: number;
  readonly quota: number;
}

/** A day's count outlives its day a little, so that a clock a bit behind never starts it afresh. */
const DAY_SLACK_MS = 60_000;

/**
 * An account's rate and daily quota, counted per recipient accepted at RCPT in `counters` (the
 * node's, or the cluster's with Redis), so every worker and node takes from one count. The rate
 * is a fixed window of the rate's own unit ("100/s": at most 100 in each second that opens with
 * a recipient). The daily quota is per UTC day; after a restart, or when the quota is set, each
 * process lifts the count to the recipients the delivery log shows queued since midnight, so a
 * restart does not renew it.
 */
export class AccountLimiter {
  /**
   * The counts this process has lifted from the log today, by account and quota: an account
   * counts only while it has a quota, so a new quota lifts the count again to what was queued.
   */
  #seeded = new Map<string, Promise<void>>();
  #seededDay = 0;

  constructor(
    private readonly counters: SharedCounters,
    private readonly accounts: Pick<AccountStore, 'list' | 'recipientsQueuedSince'>,
    private readonly clock: Clock,
  ) {}

  /** Counts one recipient of `account`, or names the limit that refuses it (nothing counted then for it). */
  async admit(account: Account): Promise<LimitReason | null> {
    const { rate, dailyQuota } = account.limits;
    // The rate first: a unit of it spent on a recipient the quota then refuses comes back with
    // the next window, a unit of the quota only the next day.
    if (
      rate &&
      (await this.counters.consume(rateKey(account.name, rate.windowMs), rate.count, rate.windowMs)) === null
    )
      return 'rate';
    if (dailyQuota === null) return null;
    const { key, windowMs } = await this.#today(account);
    return (await this.counters.consume(key, dailyQuota, windowMs)) === null ? 'daily' : null;
  }

  /** The limit `account` has already reached, without counting anything (MAIL FROM: no transaction can succeed). */
  async reached(account: Account): Promise<LimitReason | null> {
    const { rate, dailyQuota } = account.limits;
    if (rate && (await this.counters.count(rateKey(account.name, rate.windowMs))) >= rate.count)
      return 'rate';
    if (dailyQuota === null) return null;
    const { key } = await this.#today(account);
    return (await this.counters.count(key)) >= dailyQuota ? 'daily' : null;
  }

  /** Today's count of every account with a daily quota (for the metrics). */
  async usage(): Promise<AccountUsage[]> {
    const limited = (await this.accounts.list()).filter((a) => a.limits.dailyQuota !== null);
    return Promise.all(
      limited.map(async (a) => {
        const { key } = await this.#today(a);
        return { account: a.name, used: await this.counters.count(key), quota: a.limits.dailyQuota! };
      }),
    );
  }

  /** Today's key and the window it opens with, once the count holds at least what the log shows. */
  async #today(account: Account): Promise<{ key: string; windowMs: number }> {
    const now = this.clock.now();
    const midnight = utcDayStart(now);
    // By name, which every node knows the account by, even nodes with spools of their own.
    const key = `account-daily:${account.name}:${new Date(midnight).toISOString().slice(0, 10)}`;
    const windowMs = midnight + DAY_MS - now + DAY_SLACK_MS;
    if (this.#seededDay !== midnight) {
      this.#seeded.clear();
      this.#seededDay = midnight;
    }
    const seedKey = `${account.id}:${account.limits.dailyQuota}`;
    let seeded = this.#seeded.get(seedKey);
    if (!seeded) {
      seeded = (async () => {
        const queued = await this.accounts.recipientsQueuedSince(account.id, midnight);
        if (queued > 0) await this.counters.raise(key, queued, windowMs);
      })();
      this.#seeded.set(seedKey, seeded);
      // A failed read is tried again by the next recipient rather than never.
      seeded.catch(() => this.#seeded.delete(seedKey));
    }
    await seeded;
    return { key, windowMs };
  }
}

const rateKey = (name: string, windowMs: number): string => `account-rate:${name}:${windowMs}`;
