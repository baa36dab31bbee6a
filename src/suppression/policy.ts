import type { SuppressionRecord, SuppressionStore } from '../spool/index.js';

export type Stream = 'transactional' | 'marketing';

/**
 * The entry that stops mail of `stream` from an account to an address, or null. Bounces,
 * complaints and manual entries stop everything; unsubscribes stop marketing mail only.
 * With `stream` unknown (at RCPT, before the headers are read) only the first kind counts.
 */
export async function blockingEntry(
  store: SuppressionStore,
  accountId: number | null,
  address: string,
  stream: Stream | null,
): Promise<SuppressionRecord | null> {
  const entries = await store.find(accountId, address);
  return (
    entries.find((e) => e.scope === 'all' || (e.scope === 'marketing' && stream === 'marketing')) ?? null
  );
}

/** How many soft bounces within how long suppress an address (`[suppression]`). */
export interface SoftBounceThresholds {
  readonly limit: number;
  readonly windowMs: number;
}

/**
 * Whether an address's soft bounces, the one just recorded included, reach the limit within the
 * window, so that it is suppressed like a hard bounce. Reports to the inbound listener and 5xx
 * replies during delivery both decide here.
 */
export async function softBouncesSuppress(
  store: SuppressionStore,
  accountId: number | null,
  address: string,
  now: number,
  thresholds: SoftBounceThresholds,
): Promise<boolean> {
  return (await store.softBouncesSince(accountId, address, now - thresholds.windowMs)) >= thresholds.limit;
}
