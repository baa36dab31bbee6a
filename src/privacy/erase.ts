import type { ErasureResult, Spool } from '../spool/index.js';

export interface EraseOptions {
  readonly accountId: number | null;
  /** How long to wait for deliveries in flight to the address to finish or abort. */
  readonly waitMs: number;
}

export interface EraseReport extends ErasureResult {
  /** False when a delivery was still in flight at the deadline (the daemon may be hung). */
  readonly quiesced: boolean;
  /** False when the WAL could not be truncated (a reader held it); the data is deleted regardless. */
  readonly scrubbed: boolean;
}

/**
 * Erases everything held about an address: first fences its messages so the daemon takes no new
 * attempt and aborts one in flight, waits for in-flight deliveries to end, then deletes in one
 * transaction and truncates the WAL. A suppression stays, as its keyed hash only.
 */
export async function eraseAddress(spool: Spool, address: string, options: EraseOptions): Promise<EraseReport> {
  const fenced = await spool.privacy.fence(address, options.accountId);
  const deadline = Date.now() + options.waitMs;
  let quiesced = true;
  while ((await spool.privacy.inflight(fenced)) > 0) {
    if (Date.now() > deadline) {
      quiesced = false;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const result = await spool.privacy.erase(address, options.accountId, fenced);
  const scrubbed = await spool.privacy.scrub();
  return { ...result, quiesced, scrubbed };
}
