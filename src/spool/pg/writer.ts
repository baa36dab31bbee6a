import type pg from 'pg';
import { SpoolError, errorMessage } from '../../shared/index.js';
import type { FatalHandler } from '../committer.js';
import type { CompleteResult, HotOp, HotResult, LeaseRequest, LeaseResult } from '../hot-ops.js';
import { attemptDetails, type DueRecipient, type NewMessage, type RecipientUpdate } from '../records.js';
import { BEGIN_SHARING_ERASURE_LOCK } from './erasure-lock.js';
import { isConnectionFailure, isDiskFull, transaction, type PgDb, type PgQuery, type PgValue } from './db.js';

/** The hot-path operations PostgreSQL runs (the SQLite-only ones carry SQLite's SQL). */
export type PgHotOp = Exclude<HotOp, { op: 'exec' } | { op: 'checkpoint' }>;

export interface PgWriter {
  run<O extends PgHotOp>(op: O): Promise<HotResult<O['op']>>;
  close(): Promise<void>;
}

/** An event row, inserted at the end of its transaction (see insertEvents). */
export interface EventRow {
  readonly at: number;
  readonly type: string;
  readonly messageId: string;
  readonly recipientId: number | null;
  readonly accountId: number | null;
  readonly domain: string | null;
  readonly attempt: number | null;
  readonly mx: string | null;
  readonly replyCode: number | null;
  readonly replyEnhanced: string | null;
  readonly replyText: string | null;
  readonly details: string | null;
}

/**
 * Event ids are what webhook cursors and `petrel events` follow, so they must become visible in
 * id order. Every transaction that writes events takes this lock just before it does and keeps
 * it until it commits: a later id is never committed before an earlier one, on any node.
 */
const EVENTS_LOCK = 0x65766e74; // "evnt"

export async function insertEvents(q: PgQuery, events: readonly EventRow[]): Promise<number[]> {
  if (events.length === 0) return [];
  const col = <T>(f: (e: EventRow) => T): T[] => events.map(f);
  // The lock is taken (the one-row CTE joined first) before any id is drawn. RETURNING keeps the
  // order of the rows inserted, which unnest WITH ORDINALITY fixes.
  const rows = await q.rows<{ id: number }>(
    `WITH lock AS (SELECT pg_advisory_xact_lock(${EVENTS_LOCK}))
     INSERT INTO events (at, type, message_id, recipient_id, account_id, domain, attempt, mx, reply_code, reply_enhanced, reply_text, details)
     SELECT at, type, message_id, recipient_id, account_id, domain, attempt, mx, reply_code, reply_enhanced, reply_text, details
     FROM lock, unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::int[], $8::text[],
                 $9::int[], $10::text[], $11::text[], $12::text[])
       WITH ORDINALITY AS e(at, type, message_id, recipient_id, account_id, domain, attempt, mx, reply_code,
                            reply_enhanced, reply_text, details, n)
     ORDER BY n RETURNING id`,
    [
      col((e) => e.at),
      col((e) => e.type),
      col((e) => e.messageId),
      col((e) => e.recipientId),
      col((e) => e.accountId),
      col((e) => e.domain),
      col((e) => e.attempt),
      col((e) => e.mx),
      col((e) => e.replyCode),
      col((e) => e.replyEnhanced),
      col((e) => e.replyText),
      col((e) => e.details),
    ],
    'petrel_insert_events',
  );
  return rows.map((r) => r.id);
}

export const PG_INSERT_BOUNCE = `INSERT INTO bounces (at, account_id, recipient_id, message_id, address_hash, address, kind, category, reason, status, diagnostic, source)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`;
export const PG_INSERT_SUPPRESSION = `INSERT INTO suppressions (account_id, address_hash, address, scope, reason, source, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`;
export const PG_COUNT_SOFT_BOUNCES = `SELECT count(*) AS n FROM bounces
     WHERE address_hash = $1 AND account_id IS NOT DISTINCT FROM $2 AND category = 'soft' AND at >= $3`;

/** What one batch collects while its ops run; written at its end. */
interface Batch {
  readonly events: EventRow[];
}

/** One message of a group's bulk insert. */
interface Insert {
  readonly id: string;
  readonly message: NewMessage;
  readonly now: number;
  readonly state: 'queued' | 'staged';
}

/**
 * Every message of a group in two statements (messages with their mentions, recipients), however many
 * there are: the writer's round trips, not the server, bound a group on PostgreSQL.
 */
async function insertMessages(q: PgQuery, batch: Batch, inserts: readonly Insert[]): Promise<void> {
  if (inserts.length === 0) return;
  const col = <T>(f: (i: Insert) => T): T[] => inserts.map(f);
  await q.rows(
    `INSERT INTO messages (id, account_id, mail_from, header_message_id, size, body, listener, received_at, stream,
                           mentions_indexed, mentions)
     SELECT id, acc, mf, hm, sz, b, l, ra, st, mi, string_to_array(mn, E'\\n')
     FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::bytea[], $7::text[],
                 $8::bigint[], $9::text[], $10::smallint[], $11::text[])
       AS t(id, acc, mf, hm, sz, b, l, ra, st, mi, mn)`,
    [
      col((i) => i.id),
      col((i) => i.message.accountId),
      col((i) => i.message.mailFrom),
      col((i) => i.message.headerMessageId),
      col((i) => i.message.body.length),
      col((i) => i.message.body),
      col((i) => i.message.listener),
      col((i) => i.now),
      col((i) => i.message.stream ?? 'transactional'),
      col((i) => (i.message.mentions ? 1 : 0)),
      // One string per message (addresses hold no line break): unnest cannot pass an array of arrays.
      col((i) => [...new Set(i.message.mentions ?? [])].join('\n')),
    ] as PgValue[],
    'petrel_insert_messages',
  );
  const rcpts = inserts.flatMap((i) => i.message.recipients.map((r) => ({ i, r })));
  await q.rows(
    `INSERT INTO recipients (message_id, rcpt_to, domain, state, next_attempt_at, updated_at)
     SELECT m, a, d, s, t, t FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
       WITH ORDINALITY AS x(m, a, d, s, t, n) ORDER BY n`,
    [
      rcpts.map((x) => x.i.id),
      rcpts.map((x) => x.r.address),
      rcpts.map((x) => x.r.domain),
      rcpts.map((x) => x.i.state),
      rcpts.map((x) => x.i.now),
    ],
    'petrel_insert_recipients',
  );
  for (const i of inserts) {
    if (i.state !== 'queued') continue;
    batch.events.push(
      receptionEvent(
        i.now,
        i.id,
        i.message.accountId,
        i.message.listener,
        i.message.recipients.length,
        i.message.body.length,
      ),
    );
  }
}

type CompleteOp = Extract<PgHotOp, { op: 'complete' }>;

/** Outcomes of a group's plain completions (no DSN, no bounce record) in one UPDATE. */
async function completeMany(q: PgQuery, batch: Batch, ops: readonly CompleteOp[]): Promise<CompleteResult[]> {
  const rows = ops.flatMap((op) => op.updates.map((u) => ({ op, u })));
  if (rows.length === 0) return ops.map(() => ({ done: true, applied: [] }));
  const changed = await q.rows<{ id: number; attempts: number }>(
    `UPDATE recipients r SET state = u.state, attempts = r.attempts + u.inc, next_attempt_at = u.next,
       last_attempt_at = u.tried, last_reply = coalesce(u.reply, r.last_reply), lease_holder = NULL,
       lease_until = NULL, updated_at = u.now, delay_warned_at = coalesce(r.delay_warned_at, u.warned)
     FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[],
       $9::bigint[]) AS u(id, state, inc, next, tried, reply, holder, now, warned)
     WHERE r.id = u.id AND r.state = 'inflight' AND r.lease_holder = u.holder
     RETURNING r.id, r.attempts`,
    [
      rows.map((x) => x.u.recipientId),
      rows.map((x) => x.u.state),
      rows.map((x) => (x.u.attempted ? 1 : 0)),
      rows.map((x) => x.u.nextAttemptAt ?? x.op.now),
      rows.map((x) => (x.u.attempted ? x.op.now : null)),
      rows.map((x) => replyLine(x.u)),
      rows.map((x) => x.op.holder),
      rows.map((x) => x.op.now),
      rows.map((x) => (x.u.delayWarned ? x.op.now : null)),
    ] as PgValue[],
    'petrel_complete',
  );
  const attempts = new Map(changed.map((r) => [r.id, r.attempts]));
  return ops.map((op) => {
    const applied = op.updates.filter((u) => attempts.has(u.recipientId));
    for (const u of applied) batch.events.push(attemptEvent(op.now, u, attempts.get(u.recipientId)!));
    return { done: true, applied };
  });
}

function attemptEvent(now: number, u: RecipientUpdate, attempt: number): EventRow {
  return {
    at: now,
    type: u.event,
    messageId: u.messageId,
    recipientId: u.recipientId,
    accountId: u.accountId,
    domain: u.domain,
    attempt,
    mx: u.mx,
    replyCode: u.reply?.code ?? null,
    replyEnhanced: u.reply?.enhanced ?? null,
    replyText: u.reply?.text ?? null,
    details: attemptDetails(u),
  };
}

function receptionEvent(
  now: number,
  messageId: string,
  accountId: number | null,
  listener: string,
  recipients: number,
  size: number,
): EventRow {
  return {
    at: now,
    type: 'reception',
    messageId,
    recipientId: null,
    accountId,
    domain: null,
    attempt: null,
    mx: null,
    replyCode: null,
    replyEnhanced: null,
    replyText: null,
    details: JSON.stringify({ listener, recipients, size }),
  };
}

function replyLine(u: RecipientUpdate): string | null {
  return u.reply ? `${u.reply.code} ${u.reply.enhanced} ${u.reply.text}`.replace(/\s+/g, ' ').trim() : null;
}

async function complete(
  q: PgQuery,
  batch: Batch,
  op: Extract<PgHotOp, { op: 'complete' }>,
): Promise<CompleteResult> {
  const { holder, updates, followUps, bounces, now } = op;
  if (followUps.length > 0) {
    // Locked until the commit, so no other node changes them between this check and the updates.
    const held = await q.rows<{ id: number }>(
      `SELECT id FROM recipients WHERE id = ANY($1::bigint[]) AND state = 'inflight' AND lease_holder = $2 FOR UPDATE`,
      [updates.map((u) => u.recipientId), holder],
    );
    if (held.length < updates.length) {
      const ids = new Set(held.map((r) => r.id));
      return {
        done: false,
        inFlight: updates.filter((u) => ids.has(u.recipientId)).map((u) => u.recipientId),
      };
    }
  }
  const applied: RecipientUpdate[] = [];
  for (const u of updates) {
    const rows = await q.rows<{ attempts: number }>(
      `UPDATE recipients SET state = $1, attempts = attempts + $2, next_attempt_at = $3, last_attempt_at = $4,
         last_reply = coalesce($5, last_reply), lease_holder = NULL, lease_until = NULL, updated_at = $6,
         delay_warned_at = coalesce(delay_warned_at, $9)
       WHERE id = $7 AND state = 'inflight' AND lease_holder = $8 RETURNING attempts`,
      [
        u.state,
        u.attempted ? 1 : 0,
        u.nextAttemptAt ?? now,
        u.attempted ? now : null,
        replyLine(u),
        now,
        u.recipientId,
        holder,
        u.delayWarned ? now : null,
      ],
    );
    if (rows.length === 0) continue;
    applied.push(u);
    batch.events.push(attemptEvent(now, u, rows[0]!.attempts));
  }
  await insertMessages(
    q,
    batch,
    followUps.map((f) => ({ id: f.id, message: f.message, now, state: 'queued' as const })),
  );
  const ended = new Set(applied.map((u) => u.recipientId));
  for (const b of bounces) {
    if (!ended.has(b.recipientId)) continue;
    await q.run(PG_INSERT_BOUNCE, b.bounce as PgValue[]);
    const s = b.suppression;
    if (!s) continue;
    if (s.soft) {
      const [row] = await q.rows<{ n: number }>(PG_COUNT_SOFT_BOUNCES, [
        s.soft.addressHash,
        s.soft.accountId,
        s.soft.since,
      ]);
      if ((row?.n ?? 0) < s.soft.limit) continue;
    }
    await q.run(PG_INSERT_SUPPRESSION, s.params as PgValue[]);
  }
  return { done: true, applied };
}

async function leaseDue(q: PgQuery, request: LeaseRequest, now: number): Promise<LeaseResult> {
  const { holder, limit, leaseMs, room, newDomainRoom } = request;
  const left = new Map(Object.entries(room));
  const skip = [...left].filter(([, n]) => n <= 0).map(([d]) => d);
  const ids: number[] = [];
  let more = false;
  let budget = limit * 4;
  // SKIP LOCKED: rows another node is leasing right now are passed over, never waited for.
  const paused = request.pausedAccounts ?? [];
  // Only while some account is paused: a look at the message for every row scanned.
  const notPaused =
    paused.length > 0
      ? `AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = r.message_id AND m.stream = 'marketing'
           AND m.account_id = ANY($4::bigint[]))`
      : '';
  const scans = [
    `SELECT r.id, r.domain FROM recipients r
     WHERE r.state = 'inflight' AND r.lease_until <= $1 AND r.abort_requested = 0
       AND NOT EXISTS (SELECT 1 FROM domain_suspensions s WHERE s.domain = r.domain)
       AND r.domain <> ALL($2::text[]) ${notPaused}
     ORDER BY r.lease_until LIMIT $3 FOR UPDATE OF r SKIP LOCKED`,
    `SELECT r.id, r.domain FROM recipients r
     WHERE r.state = 'queued' AND r.next_attempt_at <= $1 AND r.abort_requested = 0
       AND NOT EXISTS (SELECT 1 FROM domain_suspensions s WHERE s.domain = r.domain)
       AND r.domain <> ALL($2::text[]) ${notPaused}
     ORDER BY r.next_attempt_at LIMIT $3 FOR UPDATE OF r SKIP LOCKED`,
  ];
  for (const [k, sql] of scans.entries()) {
    if (budget <= 0) break;
    const rows = await q.rows<{ id: number; domain: string }>(
      sql,
      paused.length > 0 ? [now, skip, budget + 1, paused] : [now, skip, budget + 1],
      `petrel_due_${k}${paused.length > 0 ? '_paused' : ''}`,
    );
    for (const row of rows) {
      if (ids.length >= limit || budget-- <= 0) {
        more = true;
        break;
      }
      const n = left.get(row.domain) ?? newDomainRoom;
      if (n <= 0) {
        more = true;
        continue;
      }
      left.set(row.domain, n - 1);
      ids.push(row.id);
    }
    if (ids.length >= limit) break;
  }
  if (ids.length === 0) return { due: [], more };
  // The body comes with the lease, once per message (on its first recipient's row): delivery
  // needs it next, and a round trip per job would cost more than the lease itself.
  const rows = await q.rows<DueRecipient & { body: Buffer | null }>(
    `WITH leased AS (
       UPDATE recipients r SET state = 'inflight', lease_holder = $1, lease_until = $2, updated_at = $3
       FROM messages m WHERE m.id = r.message_id AND r.id = ANY($4::bigint[])
       RETURNING r.id AS id, r.message_id AS "messageId", r.rcpt_to AS address, r.domain AS domain,
         r.attempts AS attempts, m.account_id AS "accountId", m.mail_from AS "mailFrom",
         m.received_at AS "receivedAt", m.stream AS stream, r.delay_warned_at AS "delayWarnedAt")
     SELECT l.*, CASE WHEN l.id = min(l.id) OVER (PARTITION BY l."messageId") THEN m.body END AS body
     FROM leased l JOIN messages m ON m.id = l."messageId"`,
    [holder, now + leaseMs, now, ids],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  return { due: ids.map((id) => byId.get(id)!).filter(Boolean), more };
}

async function execute(q: PgQuery, batch: Batch, op: PgHotOp): Promise<unknown> {
  switch (op.op) {
    case 'insert':
      await insertMessages(q, batch, [{ id: op.id, message: op.message, now: op.now, state: 'queued' }]);
      return undefined;
    case 'stage':
      await insertMessages(
        q,
        batch,
        op.copies.map((c) => ({ id: c.id, message: c.message, now: op.now, state: 'staged' as const })),
      );
      return undefined;
    case 'publish': {
      let queued = 0;
      for (const id of op.ids) {
        const rows = await q.rows<{ account_id: number | null; listener: string; size: number; n: number }>(
          `WITH q AS (
             UPDATE recipients SET state = 'queued', next_attempt_at = $1, updated_at = $1
             WHERE message_id = $2 AND state = 'staged' RETURNING 1)
           SELECT m.account_id, m.listener, m.size, (SELECT count(*) FROM q) AS n FROM messages m WHERE m.id = $2`,
          [op.now, id],
        );
        const r = rows[0];
        if (!r || r.n === 0) continue;
        batch.events.push(receptionEvent(op.now, id, r.account_id, r.listener, r.n, r.size));
        queued += r.n;
      }
      return queued;
    }
    case 'discard':
      for (const id of op.ids) {
        await q.run(
          `DELETE FROM messages WHERE id = $1 AND EXISTS (SELECT 1 FROM recipients WHERE message_id = $1 AND state = 'staged')`,
          [id],
        );
      }
      return undefined;
    case 'complete':
      return complete(q, batch, op);
    case 'lease':
      return leaseDue(q, op.request, op.now);
    case 'renew':
      return q.run(
        `UPDATE recipients SET lease_until = $1 WHERE id = ANY($2::bigint[]) AND state = 'inflight' AND lease_holder = $3`,
        [op.until, op.ids, op.holder],
      );
    case 'release':
      await q.run(
        `UPDATE recipients SET state = 'queued', lease_holder = NULL, lease_until = NULL, updated_at = $1
         WHERE id = ANY($2::bigint[]) AND state = 'inflight' AND lease_holder = $3`,
        [op.now, op.ids, op.holder],
      );
      return undefined;
    case 'probe':
      await q.run(
        `INSERT INTO settings (key, value) VALUES ('last_write_check', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [Buffer.from(String(op.now))],
      );
      return undefined;
  }
}

const insertsMessages = (op: PgHotOp): boolean =>
  op.op === 'insert' || op.op === 'stage' || (op.op === 'complete' && op.followUps.length > 0);

interface Pending {
  readonly op: PgHotOp;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

const MAX_BATCH = 256;

function wrap(err: unknown): SpoolError {
  if (err instanceof SpoolError) return err;
  const code = isDiskFull(err) ? 'PETREL_SPOOL_FULL' : 'PETREL_SPOOL_WRITE';
  return new SpoolError(code, `spool write failed: ${errorMessage(err)}`, { cause: err });
}

/**
 * Group commit on PostgreSQL: the hot-path writes that arrive while a transaction commits run
 * together in the next one, on a connection of the writer's own, and each promise settles only
 * after that commit (synchronous_commit = on: flushed to the server's WAL). When a group fails
 * for a reason of one of its writes, each is run again alone, so one bad write fails only itself.
 */
export function pgWriter(db: PgDb, onFatal: FatalHandler): PgWriter {
  void onFatal;
  const pending: Pending[] = [];
  let client: pg.Client | null = null;
  let running: Promise<void> | null = null;
  let closed = false;

  const connection = async (): Promise<pg.Client> => {
    client ??= await db.client();
    return client;
  };
  const drop = (): void => {
    const c = client;
    client = null;
    c?.end().catch(() => undefined);
  };

  const runGroup = async (group: readonly Pending[]): Promise<unknown[]> => {
    const c = await connection();
    // Before any row lock: an erasure's last step waits for these messages, or they for it.
    const begin = group.some((p) => insertsMessages(p.op)) ? BEGIN_SHARING_ERASURE_LOCK : 'BEGIN';
    return transaction(
      c,
      async (q) => {
        const batch: Batch = { events: [] };
        const values: unknown[] = new Array(group.length);
        // New mail and plain outcomes, the bulk of a busy group, in a few statements for all.
        const inserts: Insert[] = [];
        const plain: { i: number; op: CompleteOp }[] = [];
        const rest: number[] = [];
        group.forEach((p, i) => {
          const op = p.op;
          if (op.op === 'insert')
            inserts.push({ id: op.id, message: op.message, now: op.now, state: 'queued' });
          else if (op.op === 'stage')
            for (const c of op.copies)
              inserts.push({ id: c.id, message: c.message, now: op.now, state: 'staged' });
          else if (op.op === 'complete' && op.followUps.length === 0 && op.bounces.length === 0) {
            plain.push({ i, op });
            return;
          } else {
            rest.push(i);
            return;
          }
          values[i] = undefined;
        });
        await insertMessages(q, batch, inserts);
        const done = await completeMany(
          q,
          batch,
          plain.map((x) => x.op),
        );
        plain.forEach((x, k) => (values[x.i] = done[k]));
        for (const i of rest) values[i] = await execute(q, batch, group[i]!.op);
        await insertEvents(q, batch.events);
        return values;
      },
      begin,
    );
  };

  const flush = async (): Promise<void> => {
    while (pending.length > 0) {
      const group = pending.splice(0, MAX_BATCH);
      try {
        const values = await runGroup(group);
        group.forEach((p, i) => p.resolve(values[i]));
      } catch (err) {
        if (isConnectionFailure(err) || group.length === 1) {
          if (isConnectionFailure(err)) drop();
          const failure = wrap(err);
          for (const p of group) p.reject(failure);
          continue;
        }
        for (const p of group) {
          try {
            const [value] = await runGroup([p]);
            p.resolve(value);
          } catch (one) {
            if (isConnectionFailure(one)) drop();
            p.reject(wrap(one));
          }
        }
      }
    }
  };

  const kick = (): void => {
    if (running) return;
    running = (async () => {
      // Let the writes of this turn of the event loop gather first.
      await new Promise((r) => setImmediate(r));
      try {
        await flush();
      } finally {
        running = null;
        if (pending.length > 0) kick();
      }
    })();
  };

  return {
    run<O extends PgHotOp>(op: O): Promise<HotResult<O['op']>> {
      if (closed) return Promise.reject(new SpoolError('PETREL_SPOOL_WRITE', 'spool is closing'));
      return new Promise((resolve, reject) => {
        pending.push({ op, resolve: resolve as (v: unknown) => void, reject });
        kick();
      });
    },
    async close() {
      closed = true;
      while (running) await running;
      drop();
    },
  };
}
