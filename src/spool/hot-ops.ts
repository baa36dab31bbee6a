import type { Statement } from 'better-sqlite3';
import { pragma, type Db } from './db.js';
import { attemptDetails, type DueRecipient, type NewMessage, type RecipientUpdate } from './records.js';

/**
 * The writes on the hot path (new mail, leases, delivery outcomes) as plain data, so that they
 * can run on whichever thread owns the write connection. Every operation carries its own `now`:
 * the caller's clock decides, not the writer's.
 */
export type HotOp =
  | { readonly op: 'insert'; readonly id: string; readonly message: NewMessage; readonly now: number }
  /**
   * Copies of one submission, written with their recipients `staged`: leasing never sees them,
   * and they have no reception event until `publish`. All copies of one op commit or none does.
   */
  | { readonly op: 'stage'; readonly copies: readonly StagedCopy[]; readonly now: number }
  /** Makes the staged recipients of these messages `queued` and writes their reception events. */
  | { readonly op: 'publish'; readonly ids: readonly string[]; readonly now: number }
  /** Deletes these messages if their recipients are still staged; queued work is never touched. */
  | { readonly op: 'discard'; readonly ids: readonly string[] }
  | {
      readonly op: 'complete';
      /** Only this holder's leases are ended: one that lapsed and went to another stays theirs. */
      readonly holder: string;
      readonly updates: readonly RecipientUpdate[];
      /**
       * Planned for all `updates`. When some would not apply and there are follow-ups, nothing
       * is written and the caller plans again for the ones that would (see queue-store).
       */
      readonly followUps: readonly { readonly id: string; readonly message: NewMessage }[];
      /** Bounce records (and suppressions) the outcomes cause, committed with them. */
      readonly bounces: readonly BounceWrite[];
      readonly now: number;
    }
  | { readonly op: 'probe'; readonly now: number }
  /** One statement of a store's own (suppressions, bounces, events): the SQL stays in spool/. */
  | { readonly op: 'exec'; readonly sql: string; readonly params: readonly SqlValue[] }
  /** wal_checkpoint(TRUNCATE), outside any transaction; resolves true when nothing held it back. */
  | { readonly op: 'checkpoint' }
  | { readonly op: 'lease'; readonly request: LeaseRequest; readonly now: number }
  | {
      readonly op: 'renew';
      readonly holder: string;
      readonly ids: readonly number[];
      readonly until: number;
      readonly now: number;
    }
  | {
      readonly op: 'release';
      readonly holder: string;
      readonly ids: readonly number[];
      readonly now: number;
    };

/** What a holder asks of the queue when it leases (see QueueStore.leaseDue). */
export interface LeaseRequest {
  readonly holder: string;
  readonly limit: number;
  /** The lease's length; the holder renews it while it still works on the recipient. */
  readonly leaseMs: number;
  /**
   * Fair leasing: how many more recipients each destination that holds work may take (0: it
   * holds as much as it can send soon, skip it), and how many one that holds none may take.
   */
  readonly room: Readonly<Record<string, number>>;
  readonly newDomainRoom: number;
  /** Accounts whose marketing mail is paused (the guard): it stays queued. */
  readonly pausedAccounts?: readonly number[];
}

export interface LeaseResult {
  readonly due: DueRecipient[];
  /** Some destination hit its room while more was due: lease again soon. */
  readonly more: boolean;
}

export interface StagedCopy {
  readonly id: string;
  readonly message: NewMessage;
}

export type CompleteResult =
  | { readonly done: true; readonly applied: RecipientUpdate[] }
  /** Nothing written: only these recipients are still in flight; plan the follow-ups for them. */
  | { readonly done: false; readonly inFlight: number[] };

export type SqlValue = string | number | bigint | Buffer | null;

export interface ExecResult {
  readonly changes: number;
  readonly lastInsertRowid: number;
}

export type HotResult<O extends HotOp['op']> = O extends 'complete'
  ? CompleteResult
  : O extends 'lease'
    ? LeaseResult
    : O extends 'renew'
      ? number
      : O extends 'exec'
        ? ExecResult
        : O extends 'checkpoint'
          ? boolean
          : O extends 'publish'
            ? number
            : undefined;

/**
 * Truncates the WAL; false when a reader on an older snapshot held it back (callers retry).
 * With `wait` false it never waits for readers or a writer, so the daemon's writer queue is not
 * held up by a long reader (a backup). Not in a transaction.
 */
export function checkpointTruncate(db: Db, wait: boolean): boolean {
  const timeout = pragma(db, 'busy_timeout') as number;
  if (!wait) db.exec('PRAGMA busy_timeout = 0');
  try {
    const [r] = pragma(db, 'wal_checkpoint(TRUNCATE)', true) as { busy: number }[];
    return r?.busy === 0;
  } finally {
    db.exec(`PRAGMA busy_timeout = ${timeout}`);
  }
}

/**
 * The rows one bounce writes (see SuppressionStore.planBounce), as data so that they commit in
 * the transaction of the outcome that caused them: a crash can never keep one without the other.
 */
export interface BounceWrite {
  readonly recipientId: number;
  /** Parameters of INSERT_BOUNCE. */
  readonly bounce: readonly SqlValue[];
  /** The suppression it adds (INSERT_SUPPRESSION): always, or once `soft` bounces reach the limit. */
  readonly suppression: {
    readonly params: readonly SqlValue[];
    readonly soft: {
      readonly addressHash: string;
      readonly accountId: number | null;
      readonly since: number;
      readonly limit: number;
    } | null;
  } | null;
}

export const INSERT_BOUNCE = `INSERT INTO bounces (at, account_id, recipient_id, message_id, address_hash, address, kind, category, reason, status, diagnostic, source)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
export const INSERT_SUPPRESSION = `INSERT INTO suppressions (account_id, address_hash, address, scope, reason, source, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`;
export const COUNT_SOFT_BOUNCES = `SELECT count(*) AS n FROM bounces WHERE address_hash = ? AND account_id IS ? AND category = 'soft' AND at >= ?`;

/** One delivery-log line about a recipient (attempts, cancellations). */
export const INSERT_RECIPIENT_EVENT = `INSERT INTO events (at, type, message_id, recipient_id, account_id, domain, attempt, mx, reply_code, reply_enhanced, reply_text, details)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** The reception event of a stored message (at, recipients now queued, message id). */
const INSERT_RECEPTION_EVENT = `INSERT INTO events (at, type, message_id, account_id, details)
     SELECT ?, 'reception', id, account_id, json_object('listener', listener, 'recipients', ?, 'size', size)
     FROM messages WHERE id = ?`;

/** Prepared statements for the hot-path operations; each runs inside the caller's transaction. */
export function prepareHotOps(db: Db): (op: HotOp) => unknown {
  const insertMessage = prepareMessageInsert(db);
  // recipients_due covers every term, so rows of skipped or suspended destinations are passed
  // over in the index, never read from the table. Lapsed leases are few: their index is short.
  const dueIn = (
    state: 'inflight' | 'queued',
    dueColumn: 'lease_until' | 'next_attempt_at',
    paused: boolean,
  ) =>
    db.prepare<[number, string, ...(string | number)[]], { id: number; domain: string }>(
      `SELECT r.id, r.domain FROM recipients r
       WHERE r.state = '${state}' AND r.${dueColumn} <= ? AND r.abort_requested = 0
         AND r.domain NOT IN (SELECT domain FROM domain_suspensions)
         AND r.domain NOT IN (SELECT value FROM json_each(?))
         ${
           // Only while some account is paused: a look at the message for every row scanned.
           paused
             ? `AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = r.message_id AND m.stream = 'marketing'
                  AND m.account_id IN (SELECT value FROM json_each(?)))`
             : ''
         }
       ORDER BY r.${dueColumn} LIMIT ?`,
    );
  const scans = {
    open: [dueIn('inflight', 'lease_until', false), dueIn('queued', 'next_attempt_at', false)],
    paused: [dueIn('inflight', 'lease_until', true), dueIn('queued', 'next_attempt_at', true)],
  };
  const lease = db.prepare(
    `UPDATE recipients SET state = 'inflight', lease_holder = ?, lease_until = ?, updated_at = ? WHERE id = ?`,
  );
  const renewOne = db.prepare(
    `UPDATE recipients SET lease_until = ? WHERE id = ? AND state = 'inflight' AND lease_holder = ?`,
  );
  const dueRow = db.prepare<[number], DueRecipient>(
    `SELECT r.id AS id, r.message_id AS messageId, r.rcpt_to AS address, r.domain AS domain,
            r.attempts AS attempts, m.account_id AS accountId, m.mail_from AS mailFrom, m.received_at AS receivedAt,
            m.stream AS stream, r.delay_warned_at AS delayWarnedAt
     FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.id = ?`,
  );
  const update = db.prepare(
    `UPDATE recipients SET state = ?, attempts = attempts + ?, next_attempt_at = ?, last_attempt_at = ?,
       last_reply = coalesce(?, last_reply), lease_holder = NULL, lease_until = NULL, updated_at = ?,
       delay_warned_at = coalesce(delay_warned_at, ?)
     WHERE id = ? AND state = 'inflight' AND lease_holder = ?`,
  );
  const attemptsOf = db.prepare<[number], { attempts: number }>(
    'SELECT attempts FROM recipients WHERE id = ?',
  );
  const leaseOf = db.prepare<[number], { state: string; holder: string | null }>(
    'SELECT state, lease_holder AS holder FROM recipients WHERE id = ?',
  );
  // Keyed by SQL text, which comes from the stores' code: a small, fixed set.
  const statements = new Map<string, Statement<SqlValue[]>>();
  const statement = (sql: string): Statement<SqlValue[]> => {
    let st = statements.get(sql);
    if (!st) statements.set(sql, (st = db.prepare<SqlValue[]>(sql)));
    return st;
  };
  const probe = db.prepare(
    "INSERT INTO settings (key, value) VALUES ('last_write_check', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
  );
  const insertEvent = db.prepare(INSERT_RECIPIENT_EVENT);
  const insertBounce = db.prepare<SqlValue[]>(INSERT_BOUNCE);
  const insertSuppression = db.prepare<SqlValue[]>(INSERT_SUPPRESSION);
  const softBounces = db.prepare<[string, number | null, number], { n: number }>(COUNT_SOFT_BOUNCES);
  const releaseOne = db.prepare(
    `UPDATE recipients SET state = 'queued', lease_holder = NULL, lease_until = NULL, updated_at = ?
     WHERE id = ? AND state = 'inflight' AND lease_holder = ?`,
  );
  const queueStaged = db.prepare(
    `UPDATE recipients SET state = 'queued', next_attempt_at = ?, updated_at = ? WHERE message_id = ? AND state = 'staged'`,
  );
  const insertReception = db.prepare(INSERT_RECEPTION_EVENT);
  const discardStaged = db.prepare(
    `DELETE FROM messages WHERE id = ? AND EXISTS (SELECT 1 FROM recipients WHERE message_id = ? AND state = 'staged')`,
  );

  const complete = (
    holder: string,
    updates: readonly RecipientUpdate[],
    followUps: readonly { id: string; message: NewMessage }[],
    bounces: readonly BounceWrite[],
    now: number,
  ): CompleteResult => {
    const held = (id: number): boolean => {
      const row = leaseOf.get(id);
      return row?.state === 'inflight' && row.holder === holder;
    };
    if (followUps.length > 0) {
      // Inside the write transaction nobody else can change these states before the updates.
      const inFlight = updates.filter((u) => held(u.recipientId)).map((u) => u.recipientId);
      if (inFlight.length < updates.length) return { done: false, inFlight };
    }
    const applied: RecipientUpdate[] = [];
    for (const u of updates) {
      const changed = update.run(
        u.state,
        u.attempted ? 1 : 0,
        u.nextAttemptAt ?? now,
        u.attempted ? now : null,
        u.reply ? `${u.reply.code} ${u.reply.enhanced} ${u.reply.text}`.replace(/\s+/g, ' ').trim() : null,
        now,
        u.delayWarned ? now : null,
        u.recipientId,
        holder,
      ).changes;
      if (changed === 0) continue;
      applied.push(u);
      const attempt = attemptsOf.get(u.recipientId)?.attempts ?? null;
      insertEvent.run(
        now,
        u.event,
        u.messageId,
        u.recipientId,
        u.accountId,
        u.domain,
        attempt,
        u.mx,
        u.reply?.code ?? null,
        u.reply?.enhanced ?? null,
        u.reply?.text ?? null,
        attemptDetails(u),
      );
    }
    for (const f of followUps) insertMessage(f.id, asBuffers(f.message), now);
    const ended = new Set(applied.map((u) => u.recipientId));
    for (const b of bounces) {
      if (!ended.has(b.recipientId)) continue;
      insertBounce.run(...b.bounce.map(asBlob));
      const s = b.suppression;
      // Counted after this bounce's own row, which is one of the soft bounces in the window.
      if (
        s &&
        (!s.soft || softBounces.get(s.soft.addressHash, s.soft.accountId, s.soft.since)!.n >= s.soft.limit)
      ) {
        insertSuppression.run(...s.params.map(asBlob));
      }
    }
    return { done: true, applied };
  };

  const leaseDue = (request: LeaseRequest, now: number): LeaseResult => {
    const { holder, limit, leaseMs, room, newDomainRoom } = request;
    const left = new Map(Object.entries(room));
    const skip = JSON.stringify([...left].filter(([, n]) => n <= 0).map(([d]) => d));
    const ids: number[] = [];
    let more = false;
    // A destination that fills its room mid-scan is skipped in SQL from the next lease on; the
    // scan is bounded so that its rows are not read at length meanwhile.
    let budget = limit * 4;
    // Lapsed leases first: their holder gave up on them (or is gone) longest ago.
    const paused = request.pausedAccounts ?? [];
    for (const statement of paused.length > 0 ? scans.paused : scans.open) {
      // all() with a bound, not iterate(): an iterator per lease is a native object to collect.
      const params = paused.length > 0 ? [JSON.stringify(paused), budget + 1] : [budget + 1];
      for (const row of statement.all(now, skip, ...params)) {
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
      if (more && (ids.length >= limit || budget <= 0)) break;
    }
    const due: DueRecipient[] = [];
    for (const id of ids) {
      lease.run(holder, now + leaseMs, now, id);
      due.push(dueRow.get(id)!);
    }
    return { due, more };
  };

  return (op) => {
    switch (op.op) {
      case 'insert':
        insertMessage(op.id, asBuffers(op.message), op.now);
        return undefined;
      case 'stage':
        for (const c of op.copies) insertMessage(c.id, asBuffers(c.message), op.now, 'staged');
        return undefined;
      case 'publish': {
        let queued = 0;
        for (const id of op.ids) {
          const n = queueStaged.run(op.now, op.now, id).changes;
          if (n > 0) insertReception.run(op.now, n, id);
          queued += n;
        }
        return queued;
      }
      case 'discard':
        // Recipients go with their message (ON DELETE CASCADE).
        for (const id of op.ids) discardStaged.run(id, id);
        return undefined;
      case 'complete':
        return complete(op.holder, op.updates, op.followUps, op.bounces, op.now);
      case 'lease':
        return leaseDue(op.request, op.now);
      case 'renew': {
        let n = 0;
        for (const id of op.ids) n += renewOne.run(op.until, id, op.holder).changes;
        return n;
      }
      case 'release':
        for (const id of op.ids) releaseOne.run(op.now, id, op.holder);
        return undefined;
      case 'probe':
        probe.run(Buffer.from(String(op.now)));
        return undefined;
      case 'checkpoint':
        throw new Error('a checkpoint cannot run inside a transaction');
      case 'exec': {
        const info = statement(op.sql).run(...op.params.map(asBlob));
        return { changes: info.changes, lastInsertRowid: Number(info.lastInsertRowid) };
      }
    }
  };
}

/** A Buffer that crossed a thread arrives as a Uint8Array; SQLite binds Buffers as BLOBs. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function asBlob(value: SqlValue): SqlValue {
  const v = value as SqlValue | Uint8Array;
  return v instanceof Uint8Array ? toBuffer(v) : value;
}

function asBuffers(message: NewMessage): NewMessage {
  return Buffer.isBuffer(message.body) ? message : { ...message, body: toBuffer(message.body) };
}

/**
 * Prepared statements that write one message, its recipients (due at once) and its mentions.
 * Queued ones get their reception event now; staged ones get it when they are published. Must
 * run inside a transaction.
 */
export function prepareMessageInsert(
  db: Db,
): (id: string, message: NewMessage, now: number, state?: 'queued' | 'staged') => void {
  const insertMessage = db.prepare(
    `INSERT INTO messages (id, account_id, mail_from, header_message_id, size, body, listener, received_at, stream, mentions_indexed)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertMention = db.prepare(
    'INSERT OR IGNORE INTO message_mentions (address, message_id) VALUES (?, ?)',
  );
  const insertRecipient = db.prepare(
    `INSERT INTO recipients (message_id, rcpt_to, domain, state, next_attempt_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const insertEvent = db.prepare(INSERT_RECEPTION_EVENT);
  return (id, message, now, state = 'queued') => {
    insertMessage.run(
      id,
      message.accountId,
      message.mailFrom,
      message.headerMessageId,
      message.body.length,
      message.body,
      message.listener,
      now,
      message.stream ?? 'transactional',
      message.mentions ? 1 : 0,
    );
    for (const address of message.mentions ?? []) insertMention.run(address, id);
    for (const r of message.recipients) insertRecipient.run(id, r.address, r.domain, state, now, now);
    if (state === 'queued') insertEvent.run(now, message.recipients.length, id);
  };
}
