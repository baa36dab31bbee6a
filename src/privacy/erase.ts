import { canonicalAddress } from '../shared/index.js';
import type { ErasureCounts, ErasureResult, ExportDocument, Spool } from '../spool/index.js';
import { mentionsAddress } from './mentions.js';

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

/** Messages (or events) one write transaction of an erasure touches. */
const CHUNK = 200;
/** Rounds of find-and-delete before the last transaction takes what still arrives. */
const MAX_ROUNDS = 5;
const UNINDEXED_PAGE = 100;

/**
 * Every message that names the address: by envelope or indexed mention (the spool's look-ups),
 * and, for messages stored before mentions were indexed, by decoding their bodies. Takes no
 * write lock.
 */
export async function messagesNaming(
  spool: Spool,
  canonical: string,
  accountId: number | null,
): Promise<string[]> {
  const ids = new Set(await spool.privacy.candidates(canonical, accountId));
  for (let after = 0; ;) {
    const page = await spool.privacy.unindexed(accountId, after, UNINDEXED_PAGE);
    if (page.length === 0) break;
    for (const m of page) if (!ids.has(m.id) && mentionsAddress(m.body, canonical)) ids.add(m.id);
    after = page[page.length - 1]!.rowid;
  }
  return [...ids];
}

/** Everything held about an address, as `petrel privacy export` prints it. */
export async function exportAddress(
  spool: Spool,
  address: string,
  accountId: number | null,
): Promise<ExportDocument> {
  const canonical = canonicalAddress(address) ?? address.toLowerCase();
  return spool.privacy.export(canonical, accountId, await messagesNaming(spool, canonical, accountId));
}

/**
 * Erases everything held about an address: fences its messages so the daemon takes no new
 * attempt and aborts one in flight, waits for in-flight deliveries to end, deletes, records the
 * audit row and truncates the WAL. Finding takes no write lock and each deletion is a short
 * transaction of its own, so the daemon keeps accepting and delivering mail meanwhile; the last
 * transaction deletes what arrived since, so nothing is left. A suppression stays, as its keyed
 * hash only.
 */
export async function eraseAddress(
  spool: Spool,
  address: string,
  options: EraseOptions,
): Promise<EraseReport> {
  const canonical = canonicalAddress(address) ?? address.toLowerCase();
  const { accountId } = options;
  const deadline = Date.now() + options.waitMs;
  const counts: ErasureCounts = {
    messages: 0,
    recipients: 0,
    otherRecipientsCancelled: 0,
    events: 0,
    bounces: 0,
    unsubscribeTokens: 0,
    suppressionsKeptAsHash: 0,
  };
  let quiesced = true;
  const deleteAll = async (ids: readonly string[]): Promise<void> => {
    for (const chunk of chunks(ids)) {
      const c = await paced(() => spool.privacy.deleteMessages(canonical, chunk));
      counts.messages += c.messages;
      counts.recipients += c.recipients;
      counts.otherRecipientsCancelled += c.otherRecipientsCancelled;
      counts.events += c.events;
    }
  };
  // The decoding scan runs once: messages stored from now on come with their mentions.
  let ids = await messagesNaming(spool, canonical, accountId);
  for (let round = 0; ids.length > 0 && round < MAX_ROUNDS; round++) {
    for (const chunk of chunks(ids)) await paced(() => spool.privacy.fence(chunk));
    while ((await spool.privacy.inflight(ids)) > 0) {
      if (Date.now() > deadline) {
        quiesced = false;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await deleteAll(ids);
    ids = await spool.privacy.candidates(canonical, accountId);
  }
  const events = await spool.privacy.eventsNaming(canonical, accountId, 0);
  for (const chunk of chunks(events)) counts.events += await paced(() => spool.privacy.deleteEvents(chunk));
  const eventsAfter = events.length > 0 ? events[events.length - 1]! : 0;
  for (;;) {
    const r = await spool.privacy.finish(canonical, accountId, counts, eventsAfter);
    if (r.done) {
      const scrubbed = await spool.privacy.scrub();
      return { ...r.result, quiesced, scrubbed };
    }
    await deleteAll(r.late);
  }
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/**
 * Runs one write transaction, then waits as long as it took (at least 20 ms): the daemon's
 * writer, retrying for SQLite's lock, gets it between two chunks rather than after the last.
 */
async function paced<T>(write: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const value = await write();
  await new Promise((r) => setTimeout(r, Math.max(20, Date.now() - t0)));
  return value;
}
