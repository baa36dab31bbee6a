import { randomBytes } from 'node:crypto';
import type { Clock } from '../../shared/index.js';
import type { MessageStore, StoredMessage, StoredRecipient } from '../message-store.js';
import {
  decisionOf,
  decisionParams,
  SELECT_DECISIONS,
  UPSERT_DECISION,
  type EventRecord,
  type QueueEntry,
  type QueueStore,
  type ShapingDecisionRow,
} from '../queue-store.js';
import type { EventType, RecipientState } from '../records.js';
import type { PgDb, PgValue } from './db.js';
import { insertEvents, type PgWriter } from './writer.js';

/** A submission publishes its staged copies within its DATA; older ones were cut short by a crash. */
const STAGED_GRACE_MS = 60 * 60_000;

/**
 * How long a body read with its lease waits for its delivery to take it. It is taken at once,
 * short of a job dropped unread; a second job of the same message reads the database again.
 */
const LEASED_BODY_MS = 30_000;

/** Holders are "node:dataDirId.random" (a process) or that and "/worker" (a node's worker). */
const nodeOf = (holder: string): string => holder.split(':')[0]!;
const instanceOf = (holder: string): string => holder.split('/')[0]!;
/**
 * "node:dataDirId.random": an instance holding its data dir's lock knows that every earlier
 * instance of the same data dir is dead, however fresh its last heartbeat (a restart).
 */
const dataDirOf = (holder: string): string => instanceOf(holder).split(':')[1]?.split('.')[0] ?? '';

interface MessageRow {
  id: string;
  account_id: number | null;
  mail_from: string;
  header_message_id: string | null;
  size: number;
  body: Buffer;
  listener: string;
  received_at: number;
  stream: string;
}

interface RecipientRow {
  id: number;
  rcpt_to: string;
  domain: string;
  state: string;
  attempts: number;
  next_attempt_at: number;
  last_reply: string | null;
}

export function createPgMessageStore(db: PgDb, clock: Clock, writer: PgWriter): MessageStore {
  return {
    newId(): string {
      return (
        clock.now().toString(36).toUpperCase().padStart(9, '0') + randomBytes(5).toString('hex').toUpperCase()
      );
    },
    insert(id, message) {
      return writer.run({ op: 'insert', id, message, now: clock.now() });
    },
    stage(copies) {
      return writer.run({ op: 'stage', copies, now: clock.now() });
    },
    publish(ids) {
      return writer.run({ op: 'publish', ids, now: clock.now() });
    },
    discard(ids) {
      return writer.run({ op: 'discard', ids });
    },
    async purgeStaged() {
      // Other nodes may be staging copies right now: only what no DATA can still be writing.
      return db.run(
        `DELETE FROM messages WHERE id IN (SELECT message_id FROM recipients WHERE state = 'staged' AND updated_at < $1)`,
        [clock.now() - STAGED_GRACE_MS],
      );
    },
    async get(id) {
      const [row] = await db.rows<MessageRow>('SELECT * FROM messages WHERE id = $1', [id]);
      if (!row) return null;
      const recipients = (
        await db.rows<RecipientRow>(
          `SELECT id, rcpt_to, domain, state, attempts, next_attempt_at, last_reply
           FROM recipients WHERE message_id = $1 ORDER BY id`,
          [id],
        )
      ).map((r): StoredRecipient => ({
        id: r.id,
        address: r.rcpt_to,
        domain: r.domain,
        state: r.state,
        attempts: r.attempts,
        nextAttemptAt: r.next_attempt_at,
        lastReply: r.last_reply,
      }));
      const message: StoredMessage = {
        id: row.id,
        accountId: row.account_id,
        mailFrom: row.mail_from,
        headerMessageId: row.header_message_id,
        size: row.size,
        body: row.body,
        listener: row.listener,
        receivedAt: row.received_at,
        stream: row.stream,
        recipients,
      };
      return message;
    },
    async count() {
      const [row] = await db.rows<{ n: number }>('SELECT count(*) AS n FROM messages');
      return row?.n ?? 0;
    },
  };
}

export function createPgQueueStore(
  db: PgDb,
  clock: Clock,
  writer: PgWriter,
  notify: () => Promise<void>,
): QueueStore {
  const requeue = `UPDATE recipients SET state = 'queued', lease_holder = NULL, lease_until = NULL,
       next_attempt_at = $1, updated_at = $1 WHERE state = 'inflight'`;
  const leasedBodies = new Map<string, { body: Buffer; until: number }>();
  return {
    async recoverInflight(holder) {
      // Only this node's earlier instances: the other nodes' leases are theirs while they live.
      return db.run(
        `${requeue} AND split_part(lease_holder, ':', 1) = $2 AND split_part(lease_holder, '/', 1) <> $3`,
        [clock.now(), nodeOf(holder), instanceOf(holder)],
      );
    },
    async heartbeat(holder, timeoutMs) {
      const now = clock.now();
      const rows = await db.rows(
        `INSERT INTO nodes (name, instance, started_at, heartbeat_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, heartbeat_at = excluded.heartbeat_at,
           started_at = CASE WHEN nodes.instance = excluded.instance THEN nodes.started_at ELSE excluded.started_at END
         WHERE nodes.instance = excluded.instance OR nodes.heartbeat_at < $4
           OR split_part(split_part(nodes.instance, ':', 2), '.', 1) = $5
         RETURNING 1`,
        [nodeOf(holder), instanceOf(holder), now, now - timeoutMs, dataDirOf(holder)],
      );
      return rows.length > 0;
    },
    async releaseLostNodes(timeoutMs) {
      const now = clock.now();
      return db.run(
        `${requeue} AND split_part(lease_holder, '/', 1) IN (SELECT instance FROM nodes WHERE heartbeat_at < $2)`,
        [now, now - timeoutMs],
      );
    },
    async releaseHolder(holder) {
      return db.run(`${requeue} AND lease_holder = $2`, [clock.now(), holder]);
    },
    async leaseDue(request) {
      const now = clock.now();
      const result = await writer.run({ op: 'lease', request, now });
      for (const [id, kept] of leasedBodies) if (kept.until <= now) leasedBodies.delete(id);
      const due = result.due.map((row) => {
        const { body, ...recipient } = row as typeof row & { body?: Buffer | null };
        if (body) leasedBodies.set(recipient.messageId, { body, until: now + LEASED_BODY_MS });
        return recipient;
      });
      return { due, more: result.more };
    },
    renew(holder, ids, until) {
      return writer.run({ op: 'renew', holder, ids, until, now: clock.now() });
    },
    async body(messageId) {
      const leased = leasedBodies.get(messageId);
      if (leased) {
        leasedBodies.delete(messageId);
        return leased.body;
      }
      const [row] = await db.rows<{ body: Buffer }>(
        'SELECT body FROM messages WHERE id = $1',
        [messageId],
        'petrel_body',
      );
      return row?.body ?? null;
    },
    async complete(holder, updates, followUps, bounces = []) {
      const now = clock.now();
      let pending = updates;
      for (;;) {
        const r = await writer.run({
          op: 'complete',
          holder,
          updates: pending,
          followUps: followUps ? followUps(pending) : [],
          bounces,
          now,
        });
        if (r.done) return r.applied;
        pending = pending.filter((u) => r.inFlight.includes(u.recipientId));
      }
    },
    release(holder, ids) {
      return writer.run({ op: 'release', holder, ids, now: clock.now() });
    },
    async fenced(holder, ids) {
      if (ids.length === 0) return [];
      const rows = await db.rows<{ id: number }>(
        `SELECT id FROM recipients WHERE id = ANY($1::bigint[])
           AND state = 'inflight' AND lease_holder = $2 AND abort_requested = 0`,
        [ids, holder],
        'petrel_fenced',
      );
      const held = new Set(rows.map((r) => r.id));
      return ids.filter((id) => !held.has(id));
    },
    async list(filter) {
      const where: string[] = [];
      const params: PgValue[] = [];
      const param = (v: PgValue): string => {
        params.push(v);
        return `$${params.length}`;
      };
      if (filter.domain) where.push(`r.domain = ${param(filter.domain)}`);
      if (filter.state) where.push(`r.state = ${param(filter.state)}`);
      else where.push("r.state IN ('queued', 'inflight')");
      if (filter.accountId !== undefined) where.push(`m.account_id = ${param(filter.accountId)}`);
      return db.rows<QueueEntry>(
        `SELECT r.message_id AS "messageId", r.id AS "recipientId", r.rcpt_to AS address, r.domain AS domain,
                r.state AS state, r.attempts AS attempts, r.next_attempt_at AS "nextAttemptAt",
                r.last_reply AS "lastReply", m.account_id AS "accountId", m.received_at AS "receivedAt"
         FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE ${where.join(' AND ')} ORDER BY r.next_attempt_at, r.id LIMIT ${param(filter.limit)}`,
        params,
      );
    },
    async events(messageId) {
      const rows = await db.rows<Record<string, unknown>>(
        'SELECT * FROM events WHERE message_id = $1 ORDER BY id',
        [messageId],
      );
      return rows.map((e): EventRecord => ({
        id: e['id'] as number,
        at: e['at'] as number,
        type: e['type'] as EventType,
        messageId: e['message_id'] as string,
        recipientId: e['recipient_id'] as number | null,
        domain: e['domain'] as string | null,
        attempt: e['attempt'] as number | null,
        mx: e['mx'] as string | null,
        reply:
          e['reply_code'] === null
            ? null
            : {
                code: e['reply_code'] as number,
                enhanced: (e['reply_enhanced'] as string) ?? '',
                text: (e['reply_text'] as string) ?? '',
              },
      }));
    },
    async recipient(id) {
      const [row] = await db.rows<{
        id: number;
        messageId: string;
        address: string;
        domain: string;
        accountId: number | null;
      }>(
        `SELECT r.id AS id, r.message_id AS "messageId", r.rcpt_to AS address, r.domain AS domain,
                m.account_id AS "accountId"
         FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.id = $1`,
        [id],
      );
      return row ?? null;
    },
    async retryMessage(messageId) {
      const now = clock.now();
      return db.run(
        `UPDATE recipients SET next_attempt_at = $1, updated_at = $1 WHERE message_id = $2 AND state = 'queued'`,
        [now, messageId],
      );
    },
    async retryDomain(domain) {
      const now = clock.now();
      return db.run(
        `UPDATE recipients SET next_attempt_at = $1, updated_at = $1 WHERE domain = $2 AND state = 'queued'`,
        [now, domain],
      );
    },
    async cancelMessage(messageId) {
      const now = clock.now();
      const n = await db.tx(async (q) => {
        const rows = await q.rows<{ id: number; domain: string; account_id: number | null }>(
          `UPDATE recipients r SET state = 'cancelled', lease_holder = NULL, lease_until = NULL, updated_at = $1
           FROM messages m WHERE m.id = r.message_id AND r.message_id = $2 AND r.state IN ('queued', 'inflight')
           RETURNING r.id, r.domain, m.account_id`,
          [now, messageId],
        );
        await insertEvents(
          q,
          rows.map((r) => ({
            at: now,
            type: 'cancelled',
            messageId,
            recipientId: r.id,
            accountId: r.account_id,
            domain: r.domain,
            attempt: null,
            mx: null,
            replyCode: null,
            replyEnhanced: null,
            replyText: null,
            details: null,
          })),
        );
        return rows.length;
      });
      if (n > 0) await notify();
      return n;
    },
    async suspend(domain, reason) {
      await db.run(
        `INSERT INTO domain_suspensions (domain, reason, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (domain) DO UPDATE SET reason = excluded.reason`,
        [domain, reason, clock.now()],
      );
      await notify();
    },
    async resume(domain) {
      const n = await db.run('DELETE FROM domain_suspensions WHERE domain = $1', [domain]);
      if (n > 0) await notify();
      return n > 0;
    },
    async suspended() {
      return (await db.rows<{ domain: string }>('SELECT domain FROM domain_suspensions ORDER BY domain')).map(
        (r) => r.domain,
      );
    },
    async shapingDecisions() {
      const rows = await db.rows<ShapingDecisionRow>(
        `${SELECT_DECISIONS} ORDER BY started_at, destination`,
        [],
        'petrel_shaping_decisions',
      );
      return rows.map(decisionOf);
    },
    async putShapingDecision(d) {
      await db.run(UPSERT_DECISION, decisionParams(d));
    },
    async clearShapingDecision(destination) {
      return (await db.run('DELETE FROM shaping_decisions WHERE destination = $1', [destination])) > 0;
    },
    async stats() {
      const rows = await db.rows<{ domain: string; queued: number; inflight: number; oldest: string }>(
        `SELECT domain, count(*) FILTER (WHERE state = 'queued') AS queued,
                count(*) FILTER (WHERE state = 'inflight') AS inflight, min(message_id) AS oldest
         FROM recipients WHERE state IN ('queued', 'inflight') GROUP BY domain ORDER BY count(*) DESC`,
      );
      return rows.map((r) => ({
        domain: r.domain,
        queued: r.queued,
        inflight: r.inflight,
        oldestReceivedAt: parseInt(r.oldest.slice(0, 9), 36) || 0,
      }));
    },
    async counts() {
      const out: Record<RecipientState, number> = {
        staged: 0,
        queued: 0,
        inflight: 0,
        delivered: 0,
        bounced: 0,
        expired: 0,
        suppressed: 0,
        cancelled: 0,
      };
      const rows = await db.rows<{ state: RecipientState; n: number }>(
        'SELECT state, count(*) AS n FROM recipients GROUP BY state',
      );
      for (const r of rows) out[r.state] = r.n;
      return out;
    },
  };
}
