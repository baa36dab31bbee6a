import type { Clock } from '../shared/index.js';
import type { Db } from './db.js';
import { INSERT_RECIPIENT_EVENT, type BounceWrite, type LeaseRequest, type LeaseResult } from './hot-ops.js';
import type {
  EventType,
  NewMessage,
  RecipientState,
  RecipientUpdate,
  ReplyRecord,
  ShapingDecision,
} from './records.js';
import type { Writer } from './writer.js';

export type {
  DueRecipient,
  EventType,
  RecipientState,
  RecipientUpdate,
  ReplyRecord,
  ShapingDecision,
} from './records.js';
export type { BounceWrite, LeaseRequest, LeaseResult } from './hot-ops.js';

/**
 * Messages to queue in the same transaction as the updates that caused them (DSNs). Called with
 * every update before the commit; when some recipient turns out to have left flight meanwhile
 * (cancelled or erased), called again with the others, and only the last call's messages are
 * queued, with the updates that do apply.
 */
export type FollowUps = (
  applied: readonly RecipientUpdate[],
) => readonly { id: string; message: NewMessage }[];

export interface QueueEntry {
  readonly messageId: string;
  readonly recipientId: number;
  readonly address: string;
  readonly domain: string;
  readonly state: RecipientState;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastReply: string | null;
  readonly accountId: number | null;
  readonly receivedAt: number;
}

export interface EventRecord {
  readonly id: number;
  readonly at: number;
  readonly type: EventType;
  readonly messageId: string;
  readonly recipientId: number | null;
  readonly domain: string | null;
  readonly attempt: number | null;
  readonly mx: string | null;
  readonly reply: ReplyRecord | null;
}

export interface DomainStats {
  readonly domain: string;
  readonly queued: number;
  readonly inflight: number;
  readonly oldestReceivedAt: number;
}

/**
 * The queue's state transitions; the scheduler owns when they happen.
 *
 * Leases: a leased recipient is `inflight` with a holder (a process; later a worker or a node)
 * and an expiry. Only its holder ends or releases it, and renews it while it still works on it;
 * once it lapses it is due again for anyone, its attempts unchanged. Nothing is deleted or
 * given up because a lease lapsed.
 */
export interface QueueStore {
  /**
   * Makes due again every lease not held by `holder`. Only for a holder that knows every other
   * is gone (the daemon holding the data dir's lock): never takes a live holder's lease.
   */
  recoverInflight(holder: string): Promise<number>;
  /**
   * Makes every lease of `holder`, known to be gone (a worker that died), due again now; never
   * touches another holder's. Returns how many recipients it requeued.
   */
  releaseHolder(holder: string): Promise<number>;
  /**
   * Claims the node named by `holder` (up to its first ":") for this instance (up to its first
   * "/") and records it alive. False when another instance of that name is alive (its heartbeat
   * is younger than `timeoutMs`). With SQLite there is one node: always true.
   */
  heartbeat(holder: string, timeoutMs: number): Promise<boolean>;
  /**
   * Requeues every lease held by a node instance whose heartbeat is older than `timeoutMs`
   * (never a live one's); returns how many. With SQLite there are no other nodes: 0.
   */
  releaseLostNodes(timeoutMs: number): Promise<number>;
  /**
   * Leases up to `limit` recipients of unsuspended domains, each destination within its room:
   * lapsed leases first, then queued ones oldest due first.
   */
  leaseDue(request: LeaseRequest): Promise<LeaseResult>;
  /** Extends the holder's leases on these recipients to `until`; returns how many it still held. */
  renew(holder: string, recipientIds: readonly number[], until: number): Promise<number>;
  body(messageId: string): Promise<Buffer | null>;
  /**
   * Applies attempt results in one transaction. An update applies only to a recipient still
   * leased by `holder` (one cancelled, erased or lapsed to another meanwhile is left alone);
   * `followUps` sees the applied ones; `bounces` are written for the applied ones only.
   */
  complete(
    holder: string,
    updates: readonly RecipientUpdate[],
    followUps?: FollowUps,
    bounces?: readonly BounceWrite[],
  ): Promise<RecipientUpdate[]>;
  /** Returns the holder's leased recipients to the queue untouched (not tried). */
  release(holder: string, recipientIds: readonly number[]): Promise<void>;
  /**
   * Of these recipients, the ones `holder` may no longer send to: no longer its lease, gone, or
   * fenced by an erasure (abort requested). One read for all of them.
   */
  fenced(holder: string, recipientIds: readonly number[]): Promise<number[]>;
  list(filter: {
    domain?: string;
    state?: RecipientState;
    accountId?: number;
    limit: number;
  }): Promise<QueueEntry[]>;
  events(messageId: string): Promise<EventRecord[]>;
  /** One recipient and its message's account, for mapping a VERP token back. */
  recipient(id: number): Promise<{
    id: number;
    messageId: string;
    address: string;
    domain: string;
    accountId: number | null;
  } | null>;
  /** Makes queued recipients due now; returns how many. */
  retryMessage(messageId: string): Promise<number>;
  retryDomain(domain: string): Promise<number>;
  /** Ends every unfinished recipient of the message as cancelled; returns how many. */
  cancelMessage(messageId: string): Promise<number>;
  suspend(domain: string, reason: string): Promise<void>;
  resume(domain: string): Promise<boolean>;
  suspended(): Promise<string[]>;
  /** Every destination's shaping decision (see ShapingDecision), oldest first. */
  shapingDecisions(): Promise<ShapingDecision[]>;
  /** Stores a destination's decision, replacing any earlier one. */
  putShapingDecision(decision: ShapingDecision): Promise<void>;
  /** Drops a destination's decision (its limits are the configured ones again); false if none. */
  clearShapingDecision(destination: string): Promise<boolean>;
  stats(): Promise<DomainStats[]>;
  counts(): Promise<Record<RecipientState, number>>;
}

/** A shaping_decisions row, as both backends read it. */
export interface ShapingDecisionRow {
  destination: string;
  rule: string;
  action: string;
  reply: string;
  connections_factor: number;
  rate_factor: number;
  rate_cap: number | null;
  started_at: number | string;
  until: number | string;
  ramp_ms: number | string;
}

export const SELECT_DECISIONS = `SELECT destination, rule, action, reply, connections_factor, rate_factor, rate_cap,
  started_at, until, ramp_ms FROM shaping_decisions`;

/** $1…$10 as decisionParams gives them (SQLite reads them as ?). */
export const UPSERT_DECISION = `INSERT INTO shaping_decisions (destination, rule, action, reply, connections_factor,
    rate_factor, rate_cap, started_at, until, ramp_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
  ON CONFLICT (destination) DO UPDATE SET rule = excluded.rule, action = excluded.action, reply = excluded.reply,
    connections_factor = excluded.connections_factor, rate_factor = excluded.rate_factor, rate_cap = excluded.rate_cap,
    started_at = excluded.started_at, until = excluded.until, ramp_ms = excluded.ramp_ms`;

export function decisionParams(d: ShapingDecision): (string | number | null)[] {
  return [
    d.destination,
    d.rule,
    d.action,
    d.reply,
    d.connectionsFactor,
    d.rateFactor,
    d.rateCap,
    d.startedAt,
    d.until,
    d.rampMs,
  ];
}

export function decisionOf(r: ShapingDecisionRow): ShapingDecision {
  return {
    destination: r.destination,
    rule: r.rule,
    action: r.action === 'suspend' ? 'suspend' : 'throttle',
    reply: r.reply,
    connectionsFactor: r.connections_factor,
    rateFactor: r.rate_factor,
    rateCap: r.rate_cap,
    startedAt: Number(r.started_at),
    until: Number(r.until),
    rampMs: Number(r.ramp_ms),
  };
}

export function createQueueStore(db: Db, clock: Clock, writer: Writer): QueueStore {
  const recover = db.prepare(
    `UPDATE recipients SET state = 'queued', lease_holder = NULL, lease_until = NULL, next_attempt_at = ?, updated_at = ?
     WHERE state = 'inflight' AND lease_holder IS NOT ?`,
  );
  const releaseAll = db.prepare(
    `UPDATE recipients SET state = 'queued', lease_holder = NULL, lease_until = NULL, next_attempt_at = ?, updated_at = ?
     WHERE state = 'inflight' AND lease_holder = ?`,
  );
  const selectBody = db.prepare<[string], { body: Buffer }>('SELECT body FROM messages WHERE id = ?');
  const selectHeld = db.prepare<[string, string], { id: number }>(
    `SELECT id FROM recipients WHERE id IN (SELECT value FROM json_each(?))
       AND state = 'inflight' AND lease_holder = ? AND abort_requested = 0`,
  );
  const retryMsg = db.prepare(
    `UPDATE recipients SET next_attempt_at = ?, updated_at = ? WHERE message_id = ? AND state = 'queued'`,
  );
  const retryDom = db.prepare(
    `UPDATE recipients SET next_attempt_at = ?, updated_at = ? WHERE domain = ? AND state = 'queued'`,
  );
  const unfinished = db.prepare<[string], { id: number; domain: string; account_id: number | null }>(
    `SELECT r.id, r.domain, m.account_id FROM recipients r JOIN messages m ON m.id = r.message_id
     WHERE r.message_id = ? AND r.state IN ('queued', 'inflight')`,
  );
  const cancelOne = db.prepare(
    `UPDATE recipients SET state = 'cancelled', lease_holder = NULL, lease_until = NULL, updated_at = ? WHERE id = ?`,
  );
  const insertEvent = db.prepare(INSERT_RECIPIENT_EVENT);
  const insertSuspension = db.prepare(
    `INSERT INTO domain_suspensions (domain, reason, created_at) VALUES (?, ?, ?)
     ON CONFLICT(domain) DO UPDATE SET reason = excluded.reason`,
  );
  const deleteSuspension = db.prepare('DELETE FROM domain_suspensions WHERE domain = ?');
  const selectDecisions = db.prepare<[], ShapingDecisionRow>(
    `${SELECT_DECISIONS} ORDER BY started_at, destination`,
  );
  const upsertDecision = db.prepare(UPSERT_DECISION.replace(/\$\d+/g, '?'));
  const deleteDecision = db.prepare('DELETE FROM shaping_decisions WHERE destination = ?');
  const selectSuspended = db.prepare<[], { domain: string }>(
    'SELECT domain FROM domain_suspensions ORDER BY domain',
  );
  // Covered by the (domain, state, message_id) index; queue ids start with their time, so the
  // smallest id is the oldest message and no join with messages is needed.
  const selectStats = db.prepare<[], { domain: string; queued: number; inflight: number; oldest: string }>(
    `SELECT domain, sum(state = 'queued') AS queued, sum(state = 'inflight') AS inflight, min(message_id) AS oldest
     FROM recipients WHERE state IN ('queued', 'inflight') GROUP BY domain ORDER BY count(*) DESC`,
  );
  const selectCounts = db.prepare<[], { state: RecipientState; n: number }>(
    'SELECT state, count(*) AS n FROM recipients GROUP BY state',
  );
  const selectRecipient = db.prepare<
    [number],
    { id: number; messageId: string; address: string; domain: string; accountId: number | null }
  >(
    `SELECT r.id AS id, r.message_id AS messageId, r.rcpt_to AS address, r.domain AS domain, m.account_id AS accountId
     FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.id = ?`,
  );
  const selectEvents = db.prepare<[string], Record<string, unknown>>(
    'SELECT * FROM events WHERE message_id = ? ORDER BY id',
  );

  const cancelTx = db.transaction((messageId: string) => {
    const now = clock.now();
    const rows = unfinished.all(messageId);
    for (const r of rows) {
      cancelOne.run(now, r.id);
      insertEvent.run(
        now,
        'cancelled',
        messageId,
        r.id,
        r.account_id,
        r.domain,
        null,
        null,
        null,
        null,
        null,
        null,
      );
    }
    return rows.length;
  });

  return {
    async recoverInflight(holder) {
      const now = clock.now();
      return recover.run(now, now, holder).changes;
    },
    async releaseHolder(holder) {
      const now = clock.now();
      return releaseAll.run(now, now, holder).changes;
    },
    // One node owns a SQLite spool (the data dir's lock): nobody to claim against or take over.
    heartbeat: async () => true,
    releaseLostNodes: async () => 0,
    leaseDue(request) {
      return writer.run({ op: 'lease', request, now: clock.now() });
    },
    renew(holder, ids, until) {
      return writer.run({ op: 'renew', holder, ids, until, now: clock.now() });
    },
    async body(messageId) {
      return selectBody.get(messageId)?.body ?? null;
    },
    async complete(holder, updates, followUps, bounces = []) {
      // Outcomes of concurrent deliveries share one commit with each other and with new mail;
      // a DSN always commits with the outcomes it reports.
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
      const held = new Set(selectHeld.all(JSON.stringify(ids), holder).map((r) => r.id));
      return ids.filter((id) => !held.has(id));
    },
    async list(filter) {
      const where: string[] = [];
      const params: (string | number)[] = [];
      if (filter.domain) {
        where.push('r.domain = ?');
        params.push(filter.domain);
      }
      if (filter.state) {
        where.push('r.state = ?');
        params.push(filter.state);
      } else where.push("r.state IN ('queued', 'inflight')");
      if (filter.accountId !== undefined) {
        where.push('m.account_id = ?');
        params.push(filter.accountId);
      }
      params.push(filter.limit);
      return db
        .prepare<(string | number)[], QueueEntry>(
          `SELECT r.message_id AS messageId, r.id AS recipientId, r.rcpt_to AS address, r.domain AS domain,
                  r.state AS state, r.attempts AS attempts, r.next_attempt_at AS nextAttemptAt,
                  r.last_reply AS lastReply, m.account_id AS accountId, m.received_at AS receivedAt
           FROM recipients r JOIN messages m ON m.id = r.message_id
           WHERE ${where.join(' AND ')} ORDER BY r.next_attempt_at, r.id LIMIT ?`,
        )
        .all(...params);
    },
    async events(messageId) {
      return selectEvents.all(messageId).map((e) => ({
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
      return selectRecipient.get(id) ?? null;
    },
    async retryMessage(messageId) {
      const now = clock.now();
      return retryMsg.run(now, now, messageId).changes;
    },
    async retryDomain(domain) {
      const now = clock.now();
      return retryDom.run(now, now, domain).changes;
    },
    async cancelMessage(messageId) {
      return cancelTx.immediate(messageId);
    },
    async suspend(domain, reason) {
      insertSuspension.run(domain, reason, clock.now());
    },
    async resume(domain) {
      return deleteSuspension.run(domain).changes > 0;
    },
    async suspended() {
      return selectSuspended.all().map((r) => r.domain);
    },
    async shapingDecisions() {
      return selectDecisions.all().map(decisionOf);
    },
    async putShapingDecision(d) {
      upsertDecision.run(...decisionParams(d));
    },
    async clearShapingDecision(destination) {
      return deleteDecision.run(destination).changes > 0;
    },
    async stats() {
      return selectStats.all().map((r) => ({
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
      for (const r of selectCounts.all()) out[r.state] = r.n;
      return out;
    },
  };
}
