import { describe, expect, it } from 'vitest';
import { localCounters } from '../../../src/shared/index.js';
import type { Account, AccountLimits } from '../../../src/spool/index.js';
import { AccountLimiter } from '../../../src/submission/account-limits.js';

const account = (id: number, limits: Omit<AccountLimits, 'egress'>): Account => ({
  id,
  name: `a${id}`,
  passwordHash: '',
  allowedDomains: ['example.com'],
  defaultStream: 'transactional',
  limits: { egress: null, ...limits },
  createdAt: 0,
});

function setup(queued: Record<number, number> = {}, start = Date.UTC(2026, 2, 1, 23, 59, 59, 0)) {
  let now = start;
  const clock = { now: () => now };
  const reads: number[] = [];
  const accounts = {
    list: () => Promise.resolve([] as Account[]),
    recipientsQueuedSince: (id: number, since: number) => {
      reads.push(since);
      return Promise.resolve(queued[id] ?? 0);
    },
  };
  return {
    limiter: new AccountLimiter(localCounters(clock), accounts, clock),
    reads,
    advance: (ms: number) => void (now += ms),
  };
}

describe('account limits', () => {
  it('counts a daily quota per UTC day, starting from what the log shows queued today', async () => {
    const { limiter, reads, advance } = setup({ 1: 3 });
    const a = account(1, { rate: null, dailyQuota: 5 });
    expect(await limiter.admit(a)).toBeNull();
    expect(await limiter.admit(a)).toBeNull();
    expect(await limiter.admit(a)).toBe('daily');
    expect(await limiter.reached(a)).toBe('daily');
    expect(reads).toEqual([Date.UTC(2026, 2, 1)]);
    // Midnight UTC: a new day, a new count, read once more from the log.
    advance(1000);
    expect(await limiter.reached(a)).toBe(null);
    expect(await limiter.admit(a)).toBeNull();
    expect(reads).toEqual([Date.UTC(2026, 2, 1), Date.UTC(2026, 2, 2)]);
  });

  it('reads the log again when the quota changes, and never counts an account without limits', async () => {
    const { limiter, reads } = setup({ 2: 4 });
    expect(await limiter.admit(account(2, { rate: null, dailyQuota: null }))).toBeNull();
    expect(reads).toEqual([]);
    expect(await limiter.admit(account(2, { rate: null, dailyQuota: 10 }))).toBeNull();
    // 4 queued and 1 counted since: the lower quota leaves room for one more.
    expect(await limiter.admit(account(2, { rate: null, dailyQuota: 6 }))).toBeNull();
    expect(await limiter.admit(account(2, { rate: null, dailyQuota: 6 }))).toBe('daily');
    expect(reads).toHaveLength(2);
  });

  it('refuses past the rate within its window and lets the next window through', async () => {
    const { limiter, advance } = setup({}, Date.UTC(2026, 2, 1, 12));
    const a = account(3, { rate: { count: 2, windowMs: 1000 }, dailyQuota: 4 });
    expect(await limiter.admit(a)).toBeNull();
    expect(await limiter.admit(a)).toBeNull();
    expect(await limiter.admit(a)).toBe('rate');
    expect(await limiter.reached(a)).toBe('rate');
    advance(1001);
    expect(await limiter.admit(a)).toBeNull();
    // Only the accepted recipients count against the day, not the one the rate refused.
    expect(await limiter.admit(a)).toBeNull();
    expect(await limiter.admit(a)).toBe('rate');
    advance(1001);
    expect(await limiter.admit(a)).toBe('daily');
    const other = account(4, { rate: { count: 2, windowMs: 1000 }, dailyQuota: null });
    expect(await limiter.admit(other)).toBeNull();
  });
});
