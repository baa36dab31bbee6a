import type { Clock } from '../../shared/index.js';
import {
  SELECT_EVENTS,
  reportDetails,
  toEventEntry,
  type EventLogRow,
  type EventStore,
} from '../event-store.js';
import type { PgDb } from './db.js';
import { insertEvents } from './writer.js';

/**
 * The delivery log on PostgreSQL. Every event insert takes the events lock (insertEvents), so
 * ids become visible in id order and a reader's cursor never passes one still uncommitted.
 */
export function createPgEventStore(db: PgDb, clock: Clock): EventStore {
  const entries = async (sql: string, params: (string | number)[]) =>
    (await db.rows<EventLogRow>(`${SELECT_EVENTS} ${sql}`, params)).map(toEventEntry);
  return {
    after(afterId, limit) {
      return entries('WHERE e.id > $1 ORDER BY e.id LIMIT $2', [afterId, limit]);
    },
    async tail(limit, msgId) {
      const rows =
        msgId === undefined
          ? await entries('ORDER BY e.id DESC LIMIT $1', [limit])
          : await entries('WHERE e.message_id = $1 ORDER BY e.id DESC LIMIT $2', [msgId, limit]);
      return rows.reverse();
    },
    afterForMessage(msgId, afterId, limit) {
      return entries('WHERE e.message_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3', [msgId, afterId, limit]);
    },
    async latestId() {
      const [row] = await db.rows<{ id: number | null }>('SELECT max(id) AS id FROM events');
      return row?.id ?? 0;
    },
    async record(input) {
      const [id] = await db.tx((q) =>
        insertEvents(q, [
          {
            at: clock.now(),
            type: input.type,
            messageId: input.msgId ?? '',
            recipientId: input.recipientId,
            accountId: input.accountId,
            domain: input.domain,
            attempt: null,
            mx: null,
            replyCode: null,
            replyEnhanced: null,
            replyText: null,
            details: reportDetails(input),
          },
        ]),
      );
      return id!;
    },
    async cursor(key) {
      const [row] = await db.rows<{ last_event_id: number }>(
        'SELECT last_event_id FROM webhook_cursors WHERE url_hash = $1',
        [key],
      );
      return row?.last_event_id ?? null;
    },
    async setCursor(key, lastEventId) {
      await db.run(
        `INSERT INTO webhook_cursors (url_hash, last_event_id, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (url_hash) DO UPDATE SET
           last_event_id = GREATEST(webhook_cursors.last_event_id, excluded.last_event_id),
           updated_at = excluded.updated_at`,
        [key, lastEventId, clock.now()],
      );
    },
  };
}
