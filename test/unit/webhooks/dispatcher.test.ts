import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging/index.js';
import type { EventEntry, EventStore } from '../../../src/spool/index.js';
import {
  createWebhookDispatcher,
  signBody,
  toWebhookEvent,
  urlKey,
  verifySignature,
  type WebhookEvent,
  type WebhookTarget,
} from '../../../src/webhooks/index.js';
import { until } from '../../helpers/until.js';

function entry(id: number, type: EventEntry['type'], extra: Partial<EventEntry> = {}): EventEntry {
  return {
    id,
    at: 1_700_000_000_000 + id,
    type,
    msgId: `m${id}`,
    messageId: null,
    recipientId: id,
    recipient: `r${id}@dest.test`,
    accountId: 1,
    domain: 'dest.test',
    attempt: 1,
    mx: 'mx.dest.test',
    reply: null,
    details: null,
    ...extra,
  };
}

/** The event store's contract over an array, with the cursor writes recorded. */
function memoryStore(
  rows: EventEntry[],
  cursors = new Map<string, number>(),
): EventStore & { writes: number[] } {
  const writes: number[] = [];
  return {
    writes,
    async after(afterId, limit) {
      return rows.filter((r) => r.id > afterId).slice(0, limit);
    },
    async tail(limit) {
      return rows.slice(-limit);
    },
    async afterForMessage(msgId, afterId, limit) {
      return rows.filter((r) => r.msgId === msgId && r.id > afterId).slice(0, limit);
    },
    async latestId() {
      return rows.at(-1)?.id ?? 0;
    },
    async record() {
      throw new Error('not used');
    },
    async cursor(key) {
      return cursors.get(key) ?? null;
    },
    async setCursor(key, id) {
      writes.push(id);
      cursors.set(key, Math.max(cursors.get(key) ?? 0, id));
    },
  };
}

const target = (over: Partial<WebhookTarget> = {}): WebhookTarget => ({
  url: 'http://hooks.test/petrel',
  secret: 'a-secret-of-enough-length',
  batchSize: 2,
  events: ['delivered', 'deferred', 'bounced', 'complained', 'unsubscribed', 'suppressed'],
  timeoutMs: 1000,
  maxBackoffMs: 40,
  pollIntervalMs: 10,
  ...over,
});

interface Call {
  readonly body: string;
  readonly headers: Record<string, string>;
}

function fakeFetch(answers: (n: number) => number | Error): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const f = async (_url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    calls.push({ body: String(init?.body), headers: init?.headers as Record<string, string> });
    const a = answers(calls.length);
    if (a instanceof Error) throw new TypeError('fetch failed', { cause: a });
    return new Response(null, { status: a });
  };
  return { fetch: f as typeof fetch, calls };
}

const sent = (calls: Call[]): WebhookEvent[][] =>
  calls.map((c) => (JSON.parse(c.body) as { events: WebhookEvent[] }).events);

describe('webhook dispatcher', () => {
  it('sends batches in id order, skips receptions and moves the cursor only past acknowledged batches', async () => {
    const rows = [
      entry(1, 'reception'),
      entry(2, 'delivery'),
      entry(3, 'transient_failure'),
      entry(4, 'reception'),
      entry(5, 'bounce'),
      entry(6, 'cancelled'),
    ];
    const cursors = new Map([[urlKey(target().url), 0]]);
    const store = memoryStore(rows, cursors);
    const { fetch, calls } = fakeFetch((n) => (n === 2 ? 500 : 200));
    const d = createWebhookDispatcher({
      events: store,
      targets: [target()],
      logger: silentLogger(),
      fetch,
      minBackoffMs: 5,
    });
    await d.start();
    await until(() => (cursors.get(urlKey(target().url)) ?? 0) >= 6);
    await d.stop();
    expect(sent(calls).map((b) => b.map((e) => e.id))).toEqual([[2, 3], [5], [5]]);
    expect(sent(calls)[0]!.map((e) => e.type)).toEqual(['delivered', 'deferred']);
    // [2,3] acknowledged: past the reception after it (4); the failed POST of [5] moved nothing;
    // its retry: past the cancellation after it (6).
    expect(store.writes).toEqual([4, 6]);
  });

  it('signs the exact body with the timestamp it sends', async () => {
    const store = memoryStore([entry(1, 'delivery')], new Map([[urlKey(target().url), 0]]));
    const { fetch, calls } = fakeFetch(() => 204);
    const d = createWebhookDispatcher({ events: store, targets: [target()], logger: silentLogger(), fetch });
    await d.start();
    await until(() => calls.length === 1);
    await d.stop();
    const { body, headers } = calls[0]!;
    const ts = headers['x-petrel-timestamp']!;
    expect(headers['x-petrel-signature']).toBe(signBody('a-secret-of-enough-length', Number(ts), body));
    expect(verifySignature('a-secret-of-enough-length', ts, body, headers['x-petrel-signature']!)).toBe(true);
    expect(verifySignature('a-secret-of-enough-length', ts, `${body} `, headers['x-petrel-signature']!)).toBe(
      false,
    );
    expect(
      verifySignature(
        'a-secret-of-enough-length',
        String(Number(ts) + 1),
        body,
        headers['x-petrel-signature']!,
      ),
    ).toBe(false);
  });

  it('retries a receiver that refuses connections with growing delays, then delivers', async () => {
    const store = memoryStore([entry(1, 'delivery')], new Map([[urlKey(target().url), 0]]));
    const times: number[] = [];
    const { fetch, calls } = fakeFetch((n) => {
      times.push(Date.now());
      return n <= 4 ? new Error('connect ECONNREFUSED') : 200;
    });
    const d = createWebhookDispatcher({
      events: store,
      targets: [target({ maxBackoffMs: 1000 })],
      logger: silentLogger(),
      fetch,
      minBackoffMs: 20,
    });
    await d.start();
    await until(() => store.writes.length === 1);
    await d.stop();
    expect(calls).toHaveLength(5);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // 20, 40, 80, 160 ms, each ±20%.
    expect(gaps[0]).toBeGreaterThanOrEqual(15);
    expect(gaps[3]).toBeGreaterThanOrEqual(120);
    expect(gaps[3]!).toBeGreaterThan(gaps[0]!);
  });

  it('starts a new receiver after the latest event, and sends only the types it asked for', async () => {
    const rows = [entry(1, 'delivery'), entry(2, 'delivery')];
    const store = memoryStore(rows);
    const { fetch, calls } = fakeFetch(() => 200);
    const d = createWebhookDispatcher({
      events: store,
      targets: [target({ events: ['bounced'] })],
      logger: silentLogger(),
      fetch,
    });
    await d.start();
    expect(await store.cursor(urlKey(target().url))).toBe(2);
    rows.push(entry(3, 'delivery'), entry(4, 'expiration'), entry(5, 'feedback'));
    await until(() => (store.writes.at(-1) ?? 0) >= 5);
    await d.stop();
    expect(
      sent(calls)
        .flat()
        .map((e) => [e.id, e.type, e.logType]),
    ).toEqual([[4, 'bounced', 'expiration']]);
  });

  it('aborts a hanging POST on stop without moving the cursor', async () => {
    const store = memoryStore([entry(1, 'delivery')], new Map([[urlKey(target().url), 0]]));
    let started = false;
    const hanging = ((_u: unknown, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        started = true;
        init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error));
      })) as typeof fetch;
    const d = createWebhookDispatcher({
      events: store,
      targets: [target({ timeoutMs: 60_000 })],
      logger: silentLogger(),
      fetch: hanging,
    });
    await d.start();
    await until(() => started);
    await d.stop();
    expect(store.writes).toEqual([]);
  });
});

describe('webhook payload', () => {
  it('maps log types to receiver types and drops internal ones', () => {
    expect(toWebhookEvent(entry(1, 'reception'))).toBeNull();
    expect(toWebhookEvent(entry(1, 'cancelled'))).toBeNull();
    const u = toWebhookEvent(
      entry(7, 'unsubscribe', {
        msgId: '',
        recipientId: null,
        recipient: 'p@dest.test',
        details: { address: 'p@dest.test', source: 'one-click' },
      }),
    );
    expect(u).toMatchObject({
      id: 7,
      type: 'unsubscribed',
      msgId: '',
      recipient: 'p@dest.test',
      details: { source: 'one-click' },
    });
    expect(u!.details).not.toHaveProperty('address');
    expect(u!.at).toBe(new Date(1_700_000_000_007).toISOString());
  });
});
