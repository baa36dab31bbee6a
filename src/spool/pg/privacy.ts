import { randomUUID } from 'node:crypto';
import { canonicalAddress, type Clock } from '../../shared/index.js';
import type {
  ErasureCounts,
  FinishResult,
  MessageErasureCounts,
  PrivacyStore,
  UnindexedMessage,
} from '../privacy-store.js';
import type { SuppressionStore } from '../suppression-store.js';
import type { PgDb, PgQuery } from './db.js';
import { takeErasureLock } from './erasure-lock.js';
import { insertEvents, type EventRow } from './writer.js';

const FINAL = "('delivered','bounced','expired','suppressed','cancelled')";
/** Recipients that erasing their message cancels; staged ones belong to a submission under way. */
const unfinished = (state: string): boolean =>
  state === 'staged' || state === 'queued' || state === 'inflight';
/** Messages the last transaction deletes itself; more come back to the caller to delete in chunks. */
const LATE_LIMIT = 200;
/** Every table erasure deletes from or rewrites, vacuumed by scrub. */
const TOUCHED = ['messages', 'recipients', 'events', 'bounces', 'unsubscribe_tokens', 'suppressions'];
/** `(account_id)` of the scope, the account's parameter being `$n` (null: every account). */
const inScope = (n: number, column = 'm.account_id'): string =>
  `($${n}::bigint IS NULL OR ${column} = $${n})`;

const CANDIDATES = `SELECT m.id FROM messages m WHERE lower(m.mail_from) = $1 AND ${inScope(2)}
  UNION SELECT m.id FROM recipients r JOIN messages m ON m.id = r.message_id WHERE lower(r.rcpt_to) = $1 AND ${inScope(2)}
  UNION SELECT m.id FROM messages m WHERE m.mentions @> ARRAY[$1::text] AND ${inScope(2)}
  ORDER BY id`;
const EVENTS_NAMING = `SELECT id FROM events WHERE id > $1 AND strpos(lower(coalesce(details, '')), $2) > 0
  AND ${inScope(3, 'account_id')} ORDER BY id`;

async function candidates(q: PgQuery, canonical: string, accountId: number | null): Promise<string[]> {
  return (await q.rows<{ id: string }>(CANDIDATES, [canonical, accountId])).map((r) => r.id);
}

/**
 * Deletes the messages with their recipients, events and mentions; returns the counts and the
 * `cancelled` events for other recipients' unfinished deliveries, which the caller inserts last
 * (insertEvents' lock is the last one a transaction takes).
 */
async function deleteMessages(
  q: PgQuery,
  canonical: string,
  ids: readonly string[],
  now: number,
): Promise<{ counts: MessageErasureCounts; cancelled: EventRow[] }> {
  const counts = { messages: 0, recipients: 0, otherRecipientsCancelled: 0, events: 0 };
  const cancelled: EventRow[] = [];
  if (ids.length === 0) return { counts, cancelled };
  // Locked in id order until the commit, as the writer locks recipients, so that no outcome
  // changes a state between this read and the delete.
  const messages = await q.rows<{ id: string; account_id: number | null }>(
    'SELECT id, account_id FROM messages WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE',
    [ids],
  );
  if (messages.length === 0) return { counts, cancelled };
  const found = messages.map((m) => m.id);
  const account = new Map(messages.map((m) => [m.id, m.account_id]));
  const rcpts = await q.rows<{
    id: number;
    message_id: string;
    rcpt_to: string;
    state: string;
    domain: string;
  }>(
    `SELECT id, message_id, rcpt_to, state, domain FROM recipients WHERE message_id = ANY($1::text[])
     ORDER BY id FOR UPDATE`,
    [found],
  );
  counts.events = await q.run('DELETE FROM events WHERE message_id = ANY($1::text[])', [found]);
  for (const r of rcpts) {
    if (r.rcpt_to.toLowerCase() === canonical) counts.recipients++;
    else if (unfinished(r.state)) {
      counts.otherRecipientsCancelled++;
      cancelled.push({
        at: now,
        type: 'cancelled',
        messageId: r.message_id,
        recipientId: r.id,
        accountId: account.get(r.message_id) ?? null,
        domain: r.domain,
        attempt: null,
        mx: null,
        replyCode: null,
        replyEnhanced: null,
        replyText: null,
        details: '{"reason":"privacy-erasure"}',
      });
    }
  }
  // Recipients go with their message (ON DELETE CASCADE), mentions are in its row.
  counts.messages = await q.run('DELETE FROM messages WHERE id = ANY($1::text[])', [found]);
  return { counts, cancelled };
}

async function deleteEventIds(q: PgQuery, ids: readonly number[]): Promise<number> {
  if (ids.length === 0) return 0;
  return q.run('DELETE FROM events WHERE id = ANY($1::bigint[])', [ids]);
}

/** SQLSTATE 42501: the role may not (CHECKPOINT needs superuser or pg_checkpoint). */
const notPermitted = (err: unknown): boolean => (err as { code?: unknown }).code === '42501';

export interface PgPrivacyOptions {
  /** Tells the daemons that recipients were fenced (see Spool.dataVersion); default: nobody. */
  readonly notify?: () => Promise<void>;
  /**
   * Scrub with VACUUM FULL: rewrites the tables erasure touched, so no page keeps the erased
   * rows in its free space, but locks each table exclusively (every node waits) while it does.
   */
  readonly vacuumFull?: boolean;
}

/**
 * Erasure and export on PostgreSQL. Reads run on the pool without locks; each write is one
 * transaction that locks the rows it changes; the last one of an erasure holds the erasure lock
 * (erasure-lock.ts), so no message arrives between its search and its commit.
 */
export function createPgPrivacyStore(
  db: PgDb,
  suppressions: SuppressionStore,
  clock: Clock,
  options: PgPrivacyOptions = {},
): PrivacyStore {
  return {
    async candidates(address, accountId) {
      return candidates(db, address, accountId);
    },
    async unindexed(accountId, after, limit) {
      return db.rows<UnindexedMessage>(
        `SELECT m.seq AS rowid, m.id, m.body FROM messages m
         WHERE m.mentions_indexed = 0 AND m.seq > $1 AND ${inScope(2)} ORDER BY m.seq LIMIT $3`,
        [after, accountId, limit],
      );
    },
    async fence(ids) {
      if (ids.length === 0) return;
      await db.run(
        `UPDATE recipients SET abort_requested = 1 WHERE id IN (
           SELECT id FROM recipients WHERE message_id = ANY($1::text[]) ORDER BY id FOR UPDATE)`,
        [ids],
      );
      await options.notify?.();
    },
    async inflight(ids) {
      if (ids.length === 0) return 0;
      // A lapsed lease's holder has given the recipient up: nothing to wait for.
      const [row] = await db.rows<{ n: number }>(
        `SELECT count(*) AS n FROM recipients WHERE state = 'inflight' AND lease_until > $1
         AND message_id = ANY($2::text[])`,
        [clock.now(), ids],
      );
      return row?.n ?? 0;
    },
    async deleteMessages(address, ids) {
      return db.tx(async (q) => {
        const { counts, cancelled } = await deleteMessages(q, address, ids, clock.now());
        await insertEvents(q, cancelled);
        return counts;
      });
    },
    async eventsNaming(address, accountId, afterId) {
      return (await db.rows<{ id: number }>(EVENTS_NAMING, [afterId, address, accountId])).map((r) => r.id);
    },
    async deleteEvents(ids) {
      return db.tx((q) => deleteEventIds(q, ids));
    },
    async finish(address, accountId, soFar, eventsAfter) {
      const hash = suppressions.addressKey(address);
      return db.tx(async (q): Promise<FinishResult> => {
        await takeErasureLock(q);
        // Under the erasure lock no message arrives: what this finds is all that is left.
        const late = await candidates(q, address, accountId);
        if (late.length > LATE_LIMIT) return { done: false, late };
        const { counts: m, cancelled } = await deleteMessages(q, address, late, clock.now());
        const naming = await q.rows<{ id: number }>(EVENTS_NAMING, [eventsAfter, address, accountId]);
        const events = await deleteEventIds(
          q,
          naming.map((r) => r.id),
        );
        const byAddress = `address_hash = $1 AND ${inScope(2, 'account_id')}`;
        const counts: ErasureCounts = {
          messages: soFar.messages + m.messages,
          recipients: soFar.recipients + m.recipients,
          otherRecipientsCancelled: soFar.otherRecipientsCancelled + m.otherRecipientsCancelled,
          events: soFar.events + m.events + events,
          bounces: await q.run(`DELETE FROM bounces WHERE ${byAddress}`, [hash, accountId]),
          unsubscribeTokens: await q.run(`DELETE FROM unsubscribe_tokens WHERE ${byAddress}`, [
            hash,
            accountId,
          ]),
          suppressionsKeptAsHash: await q.run(
            `UPDATE suppressions SET address = NULL WHERE ${byAddress} AND address IS NOT NULL`,
            [hash, accountId],
          ),
        };
        await insertEvents(q, cancelled);
        const requestId = randomUUID();
        await q.run(
          `INSERT INTO privacy_audit (at, request_id, kind, address_hash, account_id, counts)
           VALUES ($1, $2, 'erase', $3, $4, $5)`,
          [clock.now(), requestId, hash, accountId, JSON.stringify(counts)],
        );
        return { done: true, result: { requestId, counts } };
      });
    },
    async scrub() {
      // No secure_delete here. VACUUM prunes the dead rows from heap and index pages, though
      // their bytes stay in the pages' free space until reused (VACUUM FULL rewrites the files);
      // ANALYZE replaces the column statistics, whose samples may quote the address, and the
      // VACUUM of pg_statistic prunes the old ones (skipped with a warning unless the role owns
      // the database). The checkpoint writes the pages out. The WAL keeps the old rows until
      // the server recycles and overwrites its segments.
      const full = options.vacuumFull === true;
      await db.run(`VACUUM (${full ? 'FULL, ' : ''}ANALYZE) ${TOUCHED.join(', ')}`);
      await db.run(`VACUUM ${full ? 'FULL ' : ''}pg_statistic`);
      try {
        await db.run('CHECKPOINT');
      } catch (err) {
        if (!notPermitted(err)) throw err;
      }
      return true;
    },
    async export(address, accountId, ids) {
      const canonical = canonicalAddress(address) ?? address.toLowerCase();
      const hash = suppressions.addressKey(canonical);
      const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
      const messages = [];
      for (const id of ids) {
        const [m] = await db.rows<{
          id: string;
          account_id: number | null;
          mail_from: string;
          header_message_id: string | null;
          size: number;
          body: Buffer;
          received_at: number;
          stream: string;
        }>('SELECT * FROM messages WHERE id = $1', [id]);
        if (!m) continue;
        const mine = await db.rows<{
          id: number;
          rcpt_to: string;
          state: string;
          attempts: number;
          last_reply: string | null;
          last_attempt_at: number | null;
        }>('SELECT * FROM recipients WHERE message_id = $1 AND lower(rcpt_to) = $2 ORDER BY id', [
          id,
          canonical,
        ]);
        messages.push({
          id: m.id,
          role:
            m.mail_from.toLowerCase() === canonical ? 'sender' : mine.length > 0 ? 'recipient' : 'mentioned',
          accountId: m.account_id,
          mailFrom: m.mail_from,
          messageId: m.header_message_id,
          stream: m.stream,
          receivedAt: iso(m.received_at),
          size: m.size,
          // Retention may already have dropped the body of a finished message.
          body: m.body.length > 0 ? m.body.toString('utf8') : null,
          recipients: mine.map((r) => ({
            id: r.id,
            address: r.rcpt_to,
            state: r.state,
            attempts: r.attempts,
            lastReply: r.last_reply,
            lastAttemptAt: iso(r.last_attempt_at),
          })),
        });
      }
      const events =
        ids.length === 0
          ? []
          : (
              await db.rows<Record<string, unknown>>(
                `SELECT at, type, message_id, recipient_id, domain, attempt, mx, reply_code, reply_enhanced, reply_text
                 FROM events WHERE message_id = ANY($1::text[]) ORDER BY array_position($1::text[], message_id), id`,
                [ids],
              )
            ).map((e) => ({ ...e, at: iso(e['at'] as number) }));
      const bounces = (
        await db.rows<Record<string, unknown>>(
          `SELECT at, account_id, message_id, kind, category, reason, status, diagnostic, source FROM bounces
           WHERE address_hash = $1 AND ${inScope(2, 'account_id')} ORDER BY id`,
          [hash, accountId],
        )
      ).map((b) => ({ ...b, at: iso(b['at'] as number) }));
      const suppressionRows = (
        await db.rows<Record<string, unknown>>(
          `SELECT account_id, address, address_hash, scope, reason, source, created_at FROM suppressions
           WHERE address_hash = $1 AND ($2::bigint IS NULL OR account_id IS NULL OR account_id = $2) ORDER BY id`,
          [hash, accountId],
        )
      ).map((s) => ({ ...s, created_at: iso(s['created_at'] as number) }));
      const tokens = (
        await db.rows<Record<string, unknown>>(
          'SELECT account_id, created_at, expires_at FROM unsubscribe_tokens WHERE address_hash = $1',
          [hash],
        )
      ).map((t) => ({
        ...t,
        created_at: iso(t['created_at'] as number),
        expires_at: iso(t['expires_at'] as number),
      }));
      return {
        address: canonical,
        generatedAt: new Date(clock.now()).toISOString(),
        messages,
        events,
        bounces,
        suppressions: suppressionRows,
        unsubscribeTokens: tokens,
      };
    },
    async erasures() {
      const [row] = await db.rows<{ n: number }>(
        "SELECT count(*) AS n FROM privacy_audit WHERE kind = 'erase'",
      );
      return row?.n ?? 0;
    },
    async sweep(now, bodiesOlderThan, recordsOlderThan) {
      // Each statement stands alone: a sweep cut short is finished by the next one.
      const finished = `NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = messages.id AND r.state NOT IN ${FINAL})`;
      const bodies = await db.run(
        `UPDATE messages SET body = ''::bytea WHERE length(body) > 0 AND received_at < $1 AND ${finished}`,
        [now - bodiesOlderThan],
      );
      const events = await db.run('DELETE FROM events WHERE at < $1', [now - recordsOlderThan]);
      const messages = await db.run(`DELETE FROM messages WHERE received_at < $1 AND ${finished}`, [
        now - recordsOlderThan,
      ]);
      const bounces = await db.run('DELETE FROM bounces WHERE at < $1', [now - recordsOlderThan]);
      await db.run('DELETE FROM unsubscribe_tokens WHERE expires_at < $1', [now]);
      return { bodies, messages, events, bounces };
    },
  };
}
