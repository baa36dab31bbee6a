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

export interface PrivacyStore {
  /**
   * Marks every recipient of the messages that carry the address so that the daemon leases
   * none of them again and aborts a delivery in flight. Returns the message ids.
   */
  fence(address: string, accountId: number | null): Promise<string[]>;
  /** Recipients of these messages still being delivered. */
  inflight(messageIds: readonly string[]): Promise<number>;
  /** Deletes the address's data (in one transaction) and records the audit row. */
  erase(address: string, accountId: number | null, messageIds: readonly string[]): Promise<ErasureResult>;
  /** Moves the WAL into the database and truncates it, so deleted pages survive in no file. */
  scrub(): Promise<boolean>;
  export(address: string, accountId: number | null): Promise<ExportDocument>;
  /** Erasures recorded so far (audit rows, never deleted). */
  erasures(): Promise<number>;
  /** Deletes bodies of finished messages and old records (retention). */
  sweep(now: number, bodiesOlderThan: number, recordsOlderThan: number): Promise<RetentionCounts>;
}

const FINAL = "('delivered','bounced','expired','suppressed','cancelled')";
/** Recipients that erasing their message cancels; staged ones belong to a submission under way. */
const unfinished = (state: string): boolean =>
  state === 'staged' || state === 'queued' || state === 'inflight';

export function createPrivacyStore(db: Db, suppressions: SuppressionStore, clock: Clock, writer: Writer): PrivacyStore {
  const byEnvelope = db.prepare<[string, string], { id: string; account_id: number | null }>(
    `SELECT id, account_id FROM messages WHERE mail_from = ? COLLATE NOCASE
     UNION SELECT m.id, m.account_id FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.rcpt_to = ? COLLATE NOCASE`,
  );
  const allBodies = db.prepare<[], { id: string; account_id: number | null; body: Buffer }>(
    'SELECT id, account_id, body FROM messages',
  );

  const targets = (address: string, accountId: number | null): string[] => {
    const canonical = canonicalAddress(address) ?? address.toLowerCase();
    const ids = new Set<string>();
    const inScope = (acc: number | null): boolean => accountId === null || acc === accountId;
    for (const r of byEnvelope.all(canonical, canonical)) if (inScope(r.account_id)) ids.add(r.id);
    // Headers, and bodies too: a DSN names the failed recipient in its report part.
    for (const r of allBodies.iterate()) {
      if (ids.has(r.id) || !inScope(r.account_id)) continue;
      if (r.body.toString('latin1').toLowerCase().includes(canonical)) ids.add(r.id);
    }
    return [...ids];
  };

  const inList = (ids: readonly string[]): string => ids.map(() => '?').join(',');

  return {
    async fence(address, accountId) {
      const ids = targets(address, accountId);
      if (ids.length > 0) {
        db.transaction(() => {
          for (const id of ids) db.prepare('UPDATE recipients SET abort_requested = 1 WHERE message_id = ?').run(id);
        }).immediate();
      }
      return ids;
    },
    async inflight(ids) {
      if (ids.length === 0) return 0;
      return (
        db
          // A lapsed lease's holder has given the recipient up: nothing to wait for.
          .prepare<(string | number)[], { n: number }>(
            `SELECT count(*) AS n FROM recipients WHERE state = 'inflight' AND lease_until > ? AND message_id IN (${inList(ids)})`,
          )
          .get(clock.now(), ...ids)?.n ?? 0
      );
    },
    async erase(address, accountId, fenced) {
      const canonical = canonicalAddress(address) ?? address.toLowerCase();
      const hash = suppressions.addressKey(canonical);
      const requestId = randomUUID();
      const now = clock.now();
      const counts: ErasureCounts = {
        messages: 0, recipients: 0, otherRecipientsCancelled: 0, events: 0, bounces: 0, unsubscribeTokens: 0, suppressionsKeptAsHash: 0,
      };
      db.transaction(() => {
        // Messages that arrived since the fence was set are caught here too.
        const ids = [...new Set([...fenced, ...targets(canonical, accountId)])];
        const accountFilter = accountId === null ? '' : ' AND account_id = ?';
        const accountArgs = accountId === null ? [] : [accountId];
        for (const id of ids) {
          const rcpts = db
            .prepare<[string], { id: number; rcpt_to: string; state: string; domain: string }>(
              'SELECT id, rcpt_to, state, domain FROM recipients WHERE message_id = ?',
            )
            .all(id);
          const account = db.prepare<[string], { account_id: number | null }>('SELECT account_id FROM messages WHERE id = ?').get(id);
          for (const r of rcpts) {
            if (r.rcpt_to.toLowerCase() === canonical) counts.recipients++;
            else if (unfinished(r.state)) counts.otherRecipientsCancelled++;
          }
          counts.events += db.prepare('DELETE FROM events WHERE message_id = ?').run(id).changes;
          for (const r of rcpts) {
            if (r.rcpt_to.toLowerCase() !== canonical && unfinished(r.state)) {
              db.prepare(
                `INSERT INTO events (at, type, message_id, recipient_id, account_id, domain, details)
                 VALUES (?, 'cancelled', ?, ?, ?, ?, '{"reason":"privacy-erasure"}')`,
              ).run(now, id, r.id, account?.account_id ?? null, r.domain);
            }
          }
          counts.messages += db.prepare('DELETE FROM messages WHERE id = ?').run(id).changes;
        }
        // Events about the address alone (unsubscribes) carry it in their details.
        counts.events += db
          .prepare(`DELETE FROM events WHERE instr(lower(coalesce(details, '')), ?) > 0${accountFilter}`)
          .run(canonical, ...accountArgs).changes;
        counts.bounces = db.prepare(`DELETE FROM bounces WHERE address_hash = ?${accountFilter}`).run(hash, ...accountArgs).changes;
        counts.unsubscribeTokens = db
          .prepare(`DELETE FROM unsubscribe_tokens WHERE address_hash = ?${accountFilter}`)
          .run(hash, ...accountArgs).changes;
        counts.suppressionsKeptAsHash = db
          .prepare(`UPDATE suppressions SET address = NULL WHERE address_hash = ? AND address IS NOT NULL${accountFilter}`)
          .run(hash, ...accountArgs).changes;
        db.prepare(
          'INSERT INTO privacy_audit (at, request_id, kind, address_hash, account_id, counts) VALUES (?, ?, ?, ?, ?, ?)',
        ).run(now, requestId, 'erase', hash, accountId, JSON.stringify(counts));
      }).immediate();
      return { requestId, counts };
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
    async export(address, accountId) {
      const canonical = canonicalAddress(address) ?? address.toLowerCase();
      const hash = suppressions.addressKey(canonical);
      const ids = targets(canonical, accountId);
      const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
      const messages = ids.map((id) => {
        const m = db
          .prepare<[string], { id: string; account_id: number | null; mail_from: string; header_message_id: string | null; size: number; body: Buffer; received_at: number; stream: string }>(
            'SELECT * FROM messages WHERE id = ?',
          )
          .get(id)!;
        const mine = db
          .prepare<[string, string], { id: number; rcpt_to: string; state: string; attempts: number; last_reply: string | null; last_attempt_at: number | null }>(
            'SELECT * FROM recipients WHERE message_id = ? AND rcpt_to = ? COLLATE NOCASE',
          )
          .all(id, canonical);
        return {
          id: m.id,
          role: m.mail_from.toLowerCase() === canonical ? 'sender' : mine.length > 0 ? 'recipient' : 'mentioned',
          accountId: m.account_id,
          mailFrom: m.mail_from,
          messageId: m.header_message_id,
          stream: m.stream,
          receivedAt: iso(m.received_at),
          size: m.size,
          // Retention may already have dropped the body of a finished message.
          body: m.body.length > 0 ? m.body.toString('utf8') : null,
          recipients: mine.map((r) => ({ id: r.id, address: r.rcpt_to, state: r.state, attempts: r.attempts, lastReply: r.last_reply, lastAttemptAt: iso(r.last_attempt_at) })),
        };
      });
      const events = ids.flatMap((id) =>
        db
          .prepare<[string], Record<string, unknown>>('SELECT at, type, message_id, recipient_id, domain, attempt, mx, reply_code, reply_enhanced, reply_text FROM events WHERE message_id = ? ORDER BY id')
          .all(id)
          .map((e) => ({ ...e, at: iso(e['at'] as number) })),
      );
      const bounces = db
        .prepare<[string], Record<string, unknown>>('SELECT at, account_id, message_id, kind, category, reason, status, diagnostic, source FROM bounces WHERE address_hash = ? ORDER BY id')
        .all(hash)
        .filter((b) => accountId === null || b['account_id'] === accountId)
        .map((b) => ({ ...b, at: iso(b['at'] as number) }));
      const suppressionRows = db
        .prepare<[string], Record<string, unknown>>('SELECT account_id, address, address_hash, scope, reason, source, created_at FROM suppressions WHERE address_hash = ? ORDER BY id')
        .all(hash)
        .filter((s) => accountId === null || s['account_id'] === accountId || s['account_id'] === null)
        .map((s) => ({ ...s, created_at: iso(s['created_at'] as number) }));
      const tokens = db
        .prepare<[string], Record<string, unknown>>('SELECT account_id, created_at, expires_at FROM unsubscribe_tokens WHERE address_hash = ?')
        .all(hash)
        .map((t) => ({ ...t, created_at: iso(t['created_at'] as number), expires_at: iso(t['expires_at'] as number) }));
      return { address: canonical, generatedAt: new Date(clock.now()).toISOString(), messages, events, bounces, suppressions: suppressionRows, unsubscribeTokens: tokens };
    },
    async erasures() {
      return db.prepare<[], { n: number }>("SELECT count(*) AS n FROM privacy_audit WHERE kind = 'erase'").get()!.n;
    },
    async sweep(now, bodiesOlderThan, recordsOlderThan) {
      // Each statement stands alone (a sweep cut short is finished by the next one), and the
      // writer runs them, so the event loop never waits for SQLite's lock.
      const exec = async (sql: string, at: number): Promise<number> => (await writer.run({ op: 'exec', sql, params: [at] })).changes;
      const finished = `NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = messages.id AND r.state NOT IN ${FINAL})`;
      const bodies = await exec(`UPDATE messages SET body = x'' WHERE length(body) > 0 AND received_at < ? AND ${finished}`, now - bodiesOlderThan);
      const events = await exec('DELETE FROM events WHERE at < ?', now - recordsOlderThan);
      const messages = await exec(`DELETE FROM messages WHERE received_at < ? AND ${finished}`, now - recordsOlderThan);
      const bounces = await exec('DELETE FROM bounces WHERE at < ?', now - recordsOlderThan);
      await exec('DELETE FROM unsubscribe_tokens WHERE expires_at < ?', now);
      return { bodies, messages, events, bounces };
    },
  };
}
