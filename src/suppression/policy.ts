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
