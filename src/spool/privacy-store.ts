import { randomUUID } from 'node:crypto';
import { canonicalAddress, type Clock } from '../shared/index.js';
import type { Db } from './db.js';
import type { SuppressionStore } from './suppression-store.js';
import type { Writer } from './writer.js';

export interface ErasureCounts {
  messages: number;
  recipients: number;
  otherRecipientsCancelled: number;
  events: number;
  bounces: number;
  unsubscribeTokens: number;
  suppressionsKeptAsHash: number;
}

export interface ErasureResult {
  readonly requestId: string;
  readonly counts: ErasureCounts;
}

export interface RetentionCounts {
  readonly bodies: number;
  readonly messages: number;
  readonly events: number;
  readonly bounces: number;
}

/** Everything held about one address, as `petrel privacy export` prints it. */
export interface ExportDocument {
  readonly address: string;
  readonly generatedAt: string;
  readonly messages: unknown[];
  readonly events: unknown[];
  readonly bounces: unknown[];
  readonly suppressions: unknown[];
  readonly unsubscribeTokens: unknown[];
}

/** What deleting some messages removed (part of ErasureCounts). */
export interface MessageErasureCounts {
  messages: number;
  recipients: number;
  otherRecipientsCancelled: number;
  events: number;
}

/** A message stored without its mentions (before they were indexed): erasure decodes its body. */
export interface UnindexedMessage {
  readonly rowid: number;
  readonly id: string;
  readonly body: Buffer;
}

export type FinishResult =
  | { readonly done: true; readonly result: ErasureResult }
  /** Nothing written: this many messages naming the address arrived meanwhile; delete them first. */
  | { readonly done: false; readonly late: string[] };

/**
 * The rows of erasure and export and the primitives erasure is made of (privacy/ decides what to
 * find and in what order). Reads take no write lock; each write is one short transaction, so the
 * daemon's writer waits for none of them long.
 */
export interface PrivacyStore {
  /**
   * Messages whose envelope names the address or whose indexed mentions include it (canonical
   * form), in the account's scope (every account when null). Index look-ups only.
   */
  candidates(address: string, accountId: number | null): Promise<string[]>;
  /** Up to `limit` messages without indexed mentions in the scope, after rowid `after`, in order. */
  unindexed(accountId: number | null, after: number, limit: number): Promise<UnindexedMessage[]>;
  /** Marks every recipient of these messages so that the daemon leases none again and aborts one in flight. */
  fence(messageIds: readonly string[]): Promise<void>;
  /** Recipients of these messages still being delivered. */
  inflight(messageIds: readonly string[]): Promise<number>;
  /**
   * Deletes these messages with their recipients, events and mentions in one transaction; other
   * recipients' unfinished deliveries get a `cancelled` event. Keep the list short (a chunk).
   */
  deleteMessages(address: string, messageIds: readonly string[]): Promise<MessageErasureCounts>;
  /** Ids of events after `afterId` in the scope whose details name the address (unsubscribes), in order. */
  eventsNaming(address: string, accountId: number | null, afterId: number): Promise<number[]>;
  /** Deletes these events in one transaction. Keep the list short (a chunk). */
  deleteEvents(eventIds: readonly number[]): Promise<number>;
  /**
   * The last transaction of an erasure: deletes what arrived since (up to a chunk of messages;
   * events after `eventsAfter`), the address's bounces and tokens, keeps its suppressions as the
   * keyed hash, and records the audit row with `counts` plus all of that. When more messages
   * than a chunk arrived, writes nothing and returns them.
   */
  finish(
    address: string,
    accountId: number | null,
    counts: ErasureCounts,
    eventsAfter: number,
  ): Promise<FinishResult>;
  /** Moves the WAL into the database and truncates it, so deleted pages survive in no file. */
  scrub(): Promise<boolean>;
  /** Everything held about the address; `messageIds` are the messages that name it. */
  export(address: string, accountId: number | null, messageIds: readonly string[]): Promise<ExportDocument>;
  /** Erasures recorded so far (audit rows, never deleted). */
  erasures(): Promise<number>;
  /** Deletes bodies of finished messages and old records (retention). */
  sweep(now: number, bodiesOlderThan: number, recordsOlderThan: number): Promise<RetentionCounts>;
}

const FINAL = "('delivered','bounced','expired','suppressed','cancelled')";
/** Recipients that erasing their message cancels; staged ones belong to a submission under way. */
const unfinished = (state: string): boolean =>
  state === 'staged' || state === 'queued' || state === 'inflight';
/** Messages the last transaction deletes itself; more come back to the caller to delete in chunks. */
const LATE_LIMIT = 200;

export function createPrivacyStore(
  db: Db,
  suppressions: SuppressionStore,
  clock: Clock,
  writer: Writer,
): PrivacyStore {
  const inScope = 'AND (? IS NULL OR m.account_id = ?)';
  const selectCandidates = db.prepare<(string | number | null)[], { id: string }>(
    `SELECT m.id FROM messages m WHERE m.mail_from = ? COLLATE NOCASE ${inScope}
     UNION SELECT m.id FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.rcpt_to = ? COLLATE NOCASE ${inScope}
     UNION SELECT m.id FROM message_mentions x JOIN messages m ON m.id = x.message_id WHERE x.address = ? ${inScope}`,
  );
  const selectUnindexed = db.prepare<(string | number | null)[], UnindexedMessage>(
    `SELECT m.rowid AS rowid, m.id, m.body FROM messages m
     WHERE m.mentions_indexed = 0 AND m.rowid > ? ${inScope} ORDER BY m.rowid LIMIT ?`,
  );
  const fenceOne = db.prepare('UPDATE recipients SET abort_requested = 1 WHERE message_id = ?');
  // A lapsed lease's holder has given the recipient up: nothing to wait for.
  const countInflight = db.prepare<[number, string], { n: number }>(
    `SELECT count(*) AS n FROM recipients WHERE state = 'inflight' AND lease_until > ?
     AND message_id IN (SELECT value FROM json_each(?))`,
  );
  const recipientsOf = db.prepare<[string], { id: number; rcpt_to: string; state: string; domain: string }>(
    'SELECT id, rcpt_to, state, domain FROM recipients WHERE message_id = ?',
  );
  const accountOf = db.prepare<[string], { account_id: number | null }>(
    'SELECT account_id FROM messages WHERE id = ?',
  );
  const deleteEventsOf = db.prepare('DELETE FROM events WHERE message_id = ?');
  const insertCancelled = db.prepare(
    `INSERT INTO events (at, type, message_id, recipient_id, account_id, domain, details)
     VALUES (?, 'cancelled', ?, ?, ?, ?, '{"reason":"privacy-erasure"}')`,
  );
  // Recipients and mentions go with their message (ON DELETE CASCADE).
  const deleteMessage = db.prepare('DELETE FROM messages WHERE id = ?');
  const selectEventsNaming = db.prepare<[number, string, number | null, number | null], { id: number }>(
    `SELECT id FROM events WHERE id > ? AND instr(lower(coalesce(details, '')), ?) > 0
     AND (? IS NULL OR account_id = ?) ORDER BY id`,
  );
  const deleteEvent = db.prepare('DELETE FROM events WHERE id = ?');

  const scope = (accountId: number | null): [number | null, number | null] => [accountId, accountId];
  const candidates = (canonical: string, accountId: number | null): string[] =>
    selectCandidates
      .all(canonical, ...scope(accountId), canonical, ...scope(accountId), canonical, ...scope(accountId))
      .map((r) => r.id);

  const deleteMessages = (canonical: string, ids: readonly string[]): MessageErasureCounts => {
    const counts = { messages: 0, recipients: 0, otherRecipientsCancelled: 0, events: 0 };
    const now = clock.now();
    for (const id of ids) {
      const account = accountOf.get(id);
      if (!account) continue;
      const rcpts = recipientsOf.all(id);
      counts.events += deleteEventsOf.run(id).changes;
      for (const r of rcpts) {
        if (r.rcpt_to.toLowerCase() === canonical) counts.recipients++;
        else if (unfinished(r.state)) {
          counts.otherRecipientsCancelled++;
          insertCancelled.run(now, id, r.id, account.account_id, r.domain);
        }
      }
      counts.messages += deleteMessage.run(id).changes;
    }
    return counts;
  };
  const deleteEventIds = (ids: readonly number[]): number => {
    let n = 0;
    for (const id of ids) n += deleteEvent.run(id).changes;
    return n;
  };

  return {
    async candidates(address, accountId) {
      return candidates(address, accountId);
    },
    async unindexed(accountId, after, limit) {
      return selectUnindexed.all(after, ...scope(accountId), limit);
    },
    async fence(ids) {
      db.transaction(() => {
        for (const id of ids) fenceOne.run(id);
      }).immediate();
    },
    async inflight(ids) {
      if (ids.length === 0) return 0;
      return countInflight.get(clock.now(), JSON.stringify(ids))?.n ?? 0;
    },
    async deleteMessages(address, ids) {
      return db.transaction(() => deleteMessages(address, ids)).immediate();
    },
    async eventsNaming(address, accountId, afterId) {
      return selectEventsNaming.all(afterId, address, ...scope(accountId)).map((r) => r.id);
    },
    async deleteEvents(ids) {
      return db.transaction(() => deleteEventIds(ids)).immediate();
    },
    async finish(address, accountId, soFar, eventsAfter) {
      const hash = suppressions.addressKey(address);
      const accountFilter = accountId === null ? '' : ' AND account_id = ?';
      const accountArgs = accountId === null ? [] : [accountId];
      return db
        .transaction((): FinishResult => {
          // Under the write lock nothing else arrives: what these find is all that is left.
          const late = candidates(address, accountId);
          if (late.length > LATE_LIMIT) return { done: false, late };
          const m = deleteMessages(address, late);
          const counts: ErasureCounts = {
            messages: soFar.messages + m.messages,
            recipients: soFar.recipients + m.recipients,
            otherRecipientsCancelled: soFar.otherRecipientsCancelled + m.otherRecipientsCancelled,
            events:
              soFar.events +
              m.events +
              deleteEventIds(
                selectEventsNaming.all(eventsAfter, address, ...scope(accountId)).map((r) => r.id),
              ),
            bounces: db
              .prepare(`DELETE FROM bounces WHERE address_hash = ?${accountFilter}`)
              .run(hash, ...accountArgs).changes,
            unsubscribeTokens: db
              .prepare(`DELETE FROM unsubscribe_tokens WHERE address_hash = ?${accountFilter}`)
              .run(hash, ...accountArgs).changes,
            suppressionsKeptAsHash: db
              .prepare(
                `UPDATE suppressions SET address = NULL WHERE address_hash = ? AND address IS NOT NULL${accountFilter}`,
              )
              .run(hash, ...accountArgs).changes,
          };
          const requestId = randomUUID();
          db.prepare(
            'INSERT INTO privacy_audit (at, request_id, kind, address_hash, account_id, counts) VALUES (?, ?, ?, ?, ?, ?)',
          ).run(clock.now(), requestId, 'erase', hash, accountId, JSON.stringify(counts));
          return { done: true, result: { requestId, counts } };
        })
        .immediate();
    },
    async scrub() {
      // A reader on an older snapshot (the daemon, briefly) can hold the checkpoint back: retry.
      // The writer runs it, so the event loop never waits for SQLite's lock.
      for (let i = 0; i < 50; i++) {
        if (await writer.run({ op: 'checkpoint' })) return true;
        await new Promise((res) => setTimeout(res, 100));
      }
      return false;
    },
    async export(address, accountId, ids) {
      const canonical = canonicalAddress(address) ?? address.toLowerCase();
      const hash = suppressions.addressKey(canonical);
      const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
      const messages = ids.map((id) => {
        const m = db
          .prepare<
            [string],
            {
              id: string;
              account_id: number | null;
              mail_from: string;
              header_message_id: string | null;
              size: number;
              body: Buffer;
              received_at: number;
              stream: string;
            }
          >('SELECT * FROM messages WHERE id = ?')
          .get(id)!;
        const mine = db
          .prepare<
            [string, string],
            {
              id: number;
              rcpt_to: string;
              state: string;
              attempts: number;
              last_reply: string | null;
              last_attempt_at: number | null;
            }
          >('SELECT * FROM recipients WHERE message_id = ? AND rcpt_to = ? COLLATE NOCASE')
          .all(id, canonical);
        return {
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
        };
      });
      const events = ids.flatMap((id) =>
        db
          .prepare<[string], Record<string, unknown>>(
            'SELECT at, type, message_id, recipient_id, domain, attempt, mx, reply_code, reply_enhanced, reply_text FROM events WHERE message_id = ? ORDER BY id',
          )
          .all(id)
          .map((e) => ({ ...e, at: iso(e['at'] as number) })),
      );
      const bounces = db
        .prepare<[string], Record<string, unknown>>(
          'SELECT at, account_id, message_id, kind, category, reason, status, diagnostic, source FROM bounces WHERE address_hash = ? ORDER BY id',
        )
        .all(hash)
        .filter((b) => accountId === null || b['account_id'] === accountId)
        .map((b) => ({ ...b, at: iso(b['at'] as number) }));
      const suppressionRows = db
        .prepare<[string], Record<string, unknown>>(
          'SELECT account_id, address, address_hash, scope, reason, source, created_at FROM suppressions WHERE address_hash = ? ORDER BY id',
        )
        .all(hash)
        .filter((s) => accountId === null || s['account_id'] === accountId || s['account_id'] === null)
        .map((s) => ({ ...s, created_at: iso(s['created_at'] as number) }));
      const tokens = db
        .prepare<[string], Record<string, unknown>>(
          'SELECT account_id, created_at, expires_at FROM unsubscribe_tokens WHERE address_hash = ?',
        )
        .all(hash)
        .map((t) => ({
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
      return db
        .prepare<[], { n: number }>("SELECT count(*) AS n FROM privacy_audit WHERE kind = 'erase'")
        .get()!.n;
    },
    async sweep(now, bodiesOlderThan, recordsOlderThan) {
      // Each statement stands alone (a sweep cut short is finished by the next one), and the
      // writer runs them, so the event loop never waits for SQLite's lock.
      const exec = async (sql: string, at: number): Promise<number> =>
        (await writer.run({ op: 'exec', sql, params: [at] })).changes;
      const finished = `NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = messages.id AND r.state NOT IN ${FINAL})`;
      const bodies = await exec(
        `UPDATE messages SET body = x'' WHERE length(body) > 0 AND received_at < ? AND ${finished}`,
        now - bodiesOlderThan,
      );
      const events = await exec('DELETE FROM events WHERE at < ?', now - recordsOlderThan);
      const messages = await exec(
        `DELETE FROM messages WHERE received_at < ? AND ${finished}`,
        now - recordsOlderThan,
      );
      const bounces = await exec('DELETE FROM bounces WHERE at < ?', now - recordsOlderThan);
      await exec('DELETE FROM unsubscribe_tokens WHERE expires_at < ?', now);
      return { bodies, messages, events, bounces };
    },
  };
}
