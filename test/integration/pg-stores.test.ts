import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { eraseAddress, messagesNaming, mentionedAddresses } from '../../src/privacy/index.js';
import type { ErasureCounts, NewMessage, Spool } from '../../src/spool/index.js';
import { shareErasureLock } from '../../src/spool/pg/erasure-lock.js';
import { filesUnder } from '../helpers/grep.js';
import { postgresBackend, sqliteBackend, type StoreFixture } from '../helpers/store-backends.js';
import { until } from '../helpers/until.js';
import { POSTGRES, startPostgres, type TestPostgres } from '../helpers/postgres.js';

const DAY = 86_400_000;

let server: TestPostgres | undefined;
beforeAll(async () => {
  if (POSTGRES.available) server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

const backends = POSTGRES.available
  ? [sqliteBackend, postgresBackend((name) => server!.database(name))]
  : [sqliteBackend];

/** A message from `from` to `to`, its content naming `mentions` (indexed unless undefined). */
function message(
  to: string[],
  options: { from?: string; accountId?: number | null; body?: string; mentions?: string[] | undefined } = {},
): NewMessage {
  const body = Buffer.from(options.body ?? `Subject: test\r\n\r\nhello\r\n`);
  return {
    accountId: options.accountId ?? null,
    mailFrom: options.from ?? 'sender@example.com',
    recipients: to.map((address) => ({ address, domain: address.slice(address.indexOf('@') + 1) })),
    headerMessageId: '<m@example.com>',
    body,
    listener: 'test',
    ...('mentions' in options ? (options.mentions ? { mentions: options.mentions } : {}) : { mentions: [] }),
  };
}

const NO_COUNTS: ErasureCounts = {
  messages: 0,
  recipients: 0,
  otherRecipientsCancelled: 0,
  events: 0,
  bounces: 0,
  unsubscribeTokens: 0,
  suppressionsKeptAsHash: 0,
};

const bounce = (address: string, accountId: number | null, category: string) => ({
  accountId,
  recipientId: null,
  messageId: null,
  address,
  kind: 'dsn',
  category,
  reason: `${category}:test`,
  status: '5.1.1',
  diagnostic: 'smtp; 550 no',
  source: 'dsn',
});

async function account(f: StoreFixture, name: string): Promise<number> {
  await f.sql(
    "INSERT INTO accounts (name, password_hash, allowed_domains, created_at, updated_at) VALUES (?, 'x', '[]', 0, 0)",
    name,
  );
  const [row] = await f.sql<{ id: number }>('SELECT id FROM accounts WHERE name = ?', name);
  return Number(row!.id);
}

async function count(f: StoreFixture, table: string): Promise<number> {
  const [row] = await f.sql<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(row!.n);
}

describe.each(backends)('the $name suppression, event and privacy stores', (backend) => {
  let f: StoreFixture;
  beforeEach(async () => {
    f = await backend.open();
  });
  afterEach(async () => {
    await f.close();
  });

  describe('suppressions', () => {
    it('adds an address once per list and scope, in canonical form, and refuses a non-address', async () => {
      const entry = { accountId: null, scope: 'all' as const, reason: 'manual', source: 'cli' };
      expect(await f.suppressions.add({ ...entry, address: 'Bob@Dest.test' })).toBe(true);
      expect(await f.suppressions.add({ ...entry, address: 'bob@dest.test' })).toBe(false);
      expect(await f.suppressions.add({ ...entry, address: 'bob@dest.test', scope: 'marketing' })).toBe(true);
      await expect(f.suppressions.add({ ...entry, address: 'not an address' })).rejects.toThrow(
        /not an email/,
      );
      const list = await f.suppressions.list({});
      expect(list.map((s) => [s.address, s.scope])).toEqual([
        ['bob@dest.test', 'all'],
        ['bob@dest.test', 'marketing'],
      ]);
      expect(list[0]!.addressHash).toBe(f.suppressions.addressKey('BOB@dest.test'));
      expect(list[0]!.addressHash).toMatch(/^[0-9a-f]{64}$/);
    });

    it('finds the account list plus the global one, and removes from one list only', async () => {
      const add = (accountId: number | null) =>
        f.suppressions.add({ accountId, address: 'bob@dest.test', scope: 'all', reason: 'r', source: 's' });
      await add(null);
      f.clock.advance(1);
      await add(1);
      f.clock.advance(1);
      await add(2);
      expect((await f.suppressions.find(1, 'Bob@dest.test')).map((s) => s.accountId)).toEqual([null, 1]);
      expect((await f.suppressions.find(null, 'bob@dest.test')).map((s) => s.accountId)).toEqual([null]);
      expect(await f.suppressions.find(1, 'other@dest.test')).toEqual([]);
      expect((await f.suppressions.list({ accountId: 2 })).map((s) => s.accountId)).toEqual([2]);
      expect((await f.suppressions.list({ accountId: null })).map((s) => s.accountId)).toEqual([null]);
      expect(await f.suppressions.list({ limit: 2 })).toHaveLength(2);
      expect(await f.suppressions.remove(1, 'BOB@dest.test')).toBe(1);
      expect((await f.suppressions.find(1, 'bob@dest.test')).map((s) => s.accountId)).toEqual([null]);
      expect(await f.suppressions.remove(null, 'bob@dest.test')).toBe(1);
      expect(await f.suppressions.remove(null, 'bob@dest.test')).toBe(0);
      expect((await f.suppressions.find(2, 'bob@dest.test')).map((s) => s.accountId)).toEqual([2]);
    });

    it('counts soft bounces by account and window, never hard ones', async () => {
      const t0 = f.clock.now();
      await f.suppressions.recordBounce(bounce('Sam@dest.test', 1, 'soft'));
      f.clock.advance(1000);
      await f.suppressions.recordBounce(bounce('sam@dest.test', 1, 'soft'));
      await f.suppressions.recordBounce(bounce('sam@dest.test', 1, 'hard'));
      await f.suppressions.recordBounce(bounce('sam@dest.test', null, 'soft'));
      expect(await f.suppressions.softBouncesSince(1, 'sam@dest.test', t0)).toBe(2);
      expect(await f.suppressions.softBouncesSince(1, 'sam@dest.test', t0 + 500)).toBe(1);
      expect(await f.suppressions.softBouncesSince(null, 'SAM@dest.test', t0)).toBe(1);
      expect(await f.suppressions.softBouncesSince(2, 'sam@dest.test', t0)).toBe(0);
      const [row] = await f.sql<{ address: string; address_hash: string }>(
        'SELECT address, address_hash FROM bounces ORDER BY id LIMIT 1',
      );
      expect(row).toEqual({
        address: 'sam@dest.test',
        address_hash: f.suppressions.addressKey('sam@dest.test'),
      });
    });

    it('plans a bounce as the rows the outcome commits: the record, and the suppression its rule asks for', async () => {
      const input = { ...bounce('Pat@Dest.test', 3, 'soft'), recipientId: 7, messageId: 'M1' };
      const now = f.clock.now();
      const hash = f.suppressions.addressKey('pat@dest.test');
      expect(f.suppressions.planBounce(input, null)).toEqual({
        recipientId: 7,
        bounce: [
          now,
          3,
          7,
          'M1',
          hash,
          'pat@dest.test',
          'dsn',
          'soft',
          'soft:test',
          '5.1.1',
          'smtp; 550 no',
          'dsn',
        ],
        suppression: null,
      });
      const rule = {
        scope: 'all' as const,
        reason: 'soft:limit',
        source: 'dsn',
        soft: { limit: 3, since: now - DAY },
      };
      expect(f.suppressions.planBounce(input, rule).suppression).toEqual({
        params: [3, hash, 'pat@dest.test', 'all', 'soft:limit', 'dsn', now],
        soft: { addressHash: hash, accountId: 3, since: now - DAY, limit: 3 },
      });
    });

    it('reuses an unsubscribe token while more than half its life remains, and resolves only valid unexpired ones', async () => {
      const token = await f.suppressions.unsubscribeToken(1, 'Ann@dest.test', 1000);
      expect(token).toMatch(/^[A-Za-z0-9_-]{24}$/);
      expect(await f.suppressions.unsubscribeToken(1, 'ann@dest.test', 1000)).toBe(token);
      expect(await f.suppressions.unsubscribeToken(null, 'ann@dest.test', 1000)).not.toBe(token);
      expect(await f.suppressions.resolveUnsubscribeToken(token)).toEqual({
        accountId: 1,
        address: 'ann@dest.test',
      });
      const forged = `${token.slice(0, 12)}${token[12] === 'A' ? 'B' : 'A'}${token.slice(13)}`;
      expect(await f.suppressions.resolveUnsubscribeToken(forged)).toBeNull();
      expect(await f.suppressions.resolveUnsubscribeToken('short')).toBeNull();
      f.clock.advance(600);
      const next = await f.suppressions.unsubscribeToken(1, 'ann@dest.test', 1000);
      expect(next).not.toBe(token);
      expect(await f.suppressions.resolveUnsubscribeToken(token)).not.toBeNull();
      f.clock.advance(500);
      expect(await f.suppressions.resolveUnsubscribeToken(token)).toBeNull();
      expect(await f.suppressions.resolveUnsubscribeToken(next)).not.toBeNull();
    });
  });

  describe('events', () => {
    it('records report events with increasing ids, read after a cursor, by message, and as a tail', async () => {
      const id = await f.insert(message(['Rita@dest.test']));
      const [rcpt] = await f.sql<{ id: number }>('SELECT id FROM recipients WHERE message_id = ?', id);
      f.clock.advance(10);
      const bounced = await f.events.record({
        type: 'bounce',
        msgId: id,
        recipientId: Number(rcpt!.id),
        accountId: null,
        domain: 'dest.test',
        details: { source: 'dsn', category: 'hard' },
      });
      const unsub = await f.events.record({
        type: 'unsubscribe',
        msgId: null,
        recipientId: null,
        accountId: 4,
        domain: 'dest.test',
        address: 'Zed@Dest.test',
        details: { source: 'http' },
      });
      expect(unsub).toBeGreaterThan(bounced);
      const all = await f.events.after(0, 100);
      expect(all.map((e) => e.type)).toEqual(['reception', 'bounce', 'unsubscribe']);
      expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => a - b));
      expect(all[1]).toMatchObject({
        id: bounced,
        msgId: id,
        messageId: '<m@example.com>',
        recipientId: Number(rcpt!.id),
        recipient: 'Rita@dest.test',
        details: { source: 'dsn', category: 'hard' },
        reply: null,
      });
      expect(all[2]).toMatchObject({
        id: unsub,
        msgId: '',
        messageId: null,
        recipient: 'zed@dest.test',
        accountId: 4,
        details: { source: 'http', address: 'zed@dest.test' },
      });
      expect(await f.events.latestId()).toBe(unsub);
      expect((await f.events.after(bounced, 10)).map((e) => e.id)).toEqual([unsub]);
      expect((await f.events.after(0, 1)).map((e) => e.type)).toEqual(['reception']);
      expect((await f.events.tail(2)).map((e) => e.id)).toEqual([bounced, unsub]);
      expect((await f.events.tail(10, id)).map((e) => e.type)).toEqual(['reception', 'bounce']);
      expect((await f.events.afterForMessage(id, all[0]!.id, 10)).map((e) => e.id)).toEqual([bounced]);
    });

    it('starts with an empty log and no cursor, and moves a cursor forward only', async () => {
      expect(await f.events.latestId()).toBe(0);
      expect(await f.events.after(0, 10)).toEqual([]);
      expect(await f.events.cursor('k')).toBeNull();
      await f.events.setCursor('k', 5);
      await f.events.setCursor('k', 3);
      expect(await f.events.cursor('k')).toBe(5);
      await f.events.setCursor('k', 9);
      expect(await f.events.cursor('k')).toBe(9);
      expect(await f.events.cursor('other')).toBeNull();
    });
  });

  describe('privacy', () => {
    it('finds messages by sender, recipient or indexed mention in any letter case, within the account', async () => {
      const a1 = await account(f, 'a1');
      const a2 = await account(f, 'a2');
      const fromAnn = await f.insert(message(['x@else.test'], { from: 'Ann@dest.test', accountId: a1 }));
      const toAnn = await f.insert(message(['ANN@dest.test'], { accountId: a2 }));
      const mentionsAnn = await f.insert(message(['y@else.test'], { mentions: ['ann@dest.test'] }));
      await f.insert(message(['z@else.test'], { mentions: ['other@dest.test'] }));
      expect((await f.privacy.candidates('ann@dest.test', null)).sort()).toEqual(
        [fromAnn, toAnn, mentionsAnn].sort(),
      );
      expect(await f.privacy.candidates('ann@dest.test', a1)).toEqual([fromAnn]);
      expect(await f.privacy.candidates('ann@dest.test', a2)).toEqual([toAnn]);
      expect(await f.privacy.candidates('nobody@dest.test', null)).toEqual([]);
    });

    it('pages through the messages stored without indexed mentions, in the order they were stored', async () => {
      const a1 = await account(f, 'a1');
      const stored: string[] = [];
      for (let i = 0; i < 3; i++) {
        stored.push(
          await f.insert(
            message(['r@else.test'], { body: `Subject: ${i}\r\n\r\nx\r\n`, mentions: undefined }),
          ),
        );
      }
      await f.insert(message(['r@else.test']));
      const other = await f.insert(message(['r@else.test'], { accountId: a1, mentions: undefined }));
      const first = await f.privacy.unindexed(null, 0, 2);
      expect(first.map((m) => m.id)).toEqual(stored.slice(0, 2));
      expect(first[0]!.rowid).toBeLessThan(first[1]!.rowid);
      expect(Buffer.from(first[1]!.body).toString()).toBe('Subject: 1\r\n\r\nx\r\n');
      expect((await f.privacy.unindexed(null, first[1]!.rowid, 10)).map((m) => m.id)).toEqual([
        stored[2],
        other,
      ]);
      expect((await f.privacy.unindexed(a1, 0, 10)).map((m) => m.id)).toEqual([other]);
    });

    it('fences every recipient of the messages and counts only live leases in flight', async () => {
      const id = await f.insert(message(['a@dest.test', 'b@dest.test', 'c@dest.test']));
      const spare = await f.insert(message(['d@dest.test']));
      await f.privacy.fence([id]);
      const rows = await f.sql<{ message_id: string; abort_requested: number }>(
        'SELECT message_id, abort_requested FROM recipients ORDER BY id',
      );
      expect(rows.map((r) => [r.message_id, Number(r.abort_requested)])).toEqual([
        [id, 1],
        [id, 1],
        [id, 1],
        [spare, 0],
      ]);
      const now = f.clock.now();
      await f.sql(
        "UPDATE recipients SET state = 'inflight', lease_until = ? WHERE rcpt_to = 'a@dest.test'",
        now + 1000,
      );
      await f.sql(
        "UPDATE recipients SET state = 'inflight', lease_until = ? WHERE rcpt_to = 'b@dest.test'",
        now - 1,
      );
      expect(await f.privacy.inflight([id, spare])).toBe(1);
      expect(await f.privacy.inflight([spare])).toBe(0);
      expect(await f.privacy.inflight([])).toBe(0);
    });

    it("deletes messages with recipients, events and mentions, and cancels other recipients' unfinished deliveries", async () => {
      const id = await f.insert(
        message(['ann@dest.test', 'bob@dest.test', 'carl@dest.test'], {
          mentions: ['ann@dest.test', 'eve@else.test'],
        }),
      );
      const kept = await f.insert(message(['dora@dest.test']));
      expect(await f.privacy.candidates('eve@else.test', null)).toEqual([id]);
      await f.sql("UPDATE recipients SET state = 'delivered' WHERE rcpt_to = 'carl@dest.test'");
      const [bob] = await f.sql<{ id: number }>("SELECT id FROM recipients WHERE rcpt_to = 'bob@dest.test'");
      expect(await f.privacy.deleteMessages('ann@dest.test', [id, 'no-such-message'])).toEqual({
        messages: 1,
        recipients: 1,
        otherRecipientsCancelled: 1,
        events: 1,
      });
      expect(await count(f, 'messages')).toBe(1);
      expect(await count(f, 'recipients')).toBe(1);
      expect(await f.privacy.candidates('eve@else.test', null)).toEqual([]);
      const log = await f.events.after(0, 10);
      expect(log.map((e) => [e.type, e.msgId])).toEqual([
        ['reception', kept],
        ['cancelled', id],
      ]);
      expect(log[1]).toMatchObject({
        recipientId: Number(bob!.id),
        domain: 'dest.test',
        details: { reason: 'privacy-erasure' },
      });
      expect(await f.privacy.deleteMessages('ann@dest.test', [])).toEqual({
        messages: 0,
        recipients: 0,
        otherRecipientsCancelled: 0,
        events: 0,
      });
    });

    it('finds the events whose details name the address, within the account, and deletes them', async () => {
      const unsub = (address: string, accountId: number | null) =>
        f.events.record({
          type: 'unsubscribe',
          msgId: null,
          recipientId: null,
          accountId,
          domain: 'dest.test',
          address,
          details: {},
        });
      const first = await unsub('Ann@dest.test', 1);
      await unsub('bob@dest.test', 1);
      const second = await unsub('ann@dest.test', 2);
      expect(await f.privacy.eventsNaming('ann@dest.test', null, 0)).toEqual([first, second]);
      expect(await f.privacy.eventsNaming('ann@dest.test', 2, 0)).toEqual([second]);
      expect(await f.privacy.eventsNaming('ann@dest.test', null, first)).toEqual([second]);
      expect(await f.privacy.deleteEvents([first, second])).toBe(2);
      expect(await f.privacy.deleteEvents([])).toBe(0);
      expect((await f.events.after(0, 10)).map((e) => e.recipient)).toEqual(['bob@dest.test']);
    });

    it('finishes an erasure: deletes what arrived since, the bounces and tokens, keeps suppressions as the hash, and audits', async () => {
      const late = await f.insert(message(['ann@dest.test', 'bob@dest.test']));
      await f.insert(message(['bob@dest.test']));
      for (const accountId of [null, 1]) {
        await f.suppressions.add({
          accountId,
          address: 'ann@dest.test',
          scope: 'all',
          reason: 'r',
          source: 's',
        });
        f.clock.advance(1);
      }
      await f.suppressions.recordBounce(bounce('ann@dest.test', null, 'hard'));
      await f.suppressions.recordBounce(bounce('bob@dest.test', null, 'hard'));
      await f.suppressions.unsubscribeToken(1, 'ann@dest.test', DAY);
      const unsub = await f.events.record({
        type: 'unsubscribe',
        msgId: null,
        recipientId: null,
        accountId: 1,
        domain: 'dest.test',
        address: 'ann@dest.test',
        details: {},
      });
      const soFar = { ...NO_COUNTS, messages: 2, events: 1 };
      const r = await f.privacy.finish('ann@dest.test', null, soFar, 0);
      expect(r.done).toBe(true);
      if (!r.done) return;
      expect(r.result.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.result.counts).toEqual({
        messages: 3,
        recipients: 1,
        otherRecipientsCancelled: 1,
        // The late message's reception, the unsubscribe, and the one counted before.
        events: 3,
        bounces: 1,
        unsubscribeTokens: 1,
        suppressionsKeptAsHash: 2,
      });
      expect(await f.privacy.candidates('eve@else.test', null)).toEqual([]);
      expect((await f.events.after(0, 10)).map((e) => [e.type, e.id === unsub])).toEqual([
        ['reception', false],
        ['cancelled', false],
      ]);
      expect((await f.events.after(0, 10))[1]!.msgId).toBe(late);
      const kept = await f.suppressions.find(1, 'ann@dest.test');
      expect(kept.map((s) => [s.accountId, s.address])).toEqual([
        [null, null],
        [1, null],
      ]);
      expect(await count(f, 'bounces')).toBe(1);
      expect(await count(f, 'unsubscribe_tokens')).toBe(0);
      expect(await f.privacy.erasures()).toBe(1);
      const [audit] = await f.sql<{ address_hash: string; counts: string; kind: string }>(
        'SELECT address_hash, counts, kind FROM privacy_audit',
      );
      expect(audit).toEqual({
        address_hash: f.suppressions.addressKey('ann@dest.test'),
        counts: JSON.stringify(r.result.counts),
        kind: 'erase',
      });
    });

    it("finishes within one account: the address's records in other accounts stay", async () => {
      const a1 = await account(f, 'a1');
      const a2 = await account(f, 'a2');
      await f.insert(message(['ann@dest.test'], { accountId: a1 }));
      const other = await f.insert(message(['ann@dest.test'], { accountId: a2 }));
      await f.suppressions.add({
        accountId: a2,
        address: 'ann@dest.test',
        scope: 'all',
        reason: 'r',
        source: 's',
      });
      await f.suppressions.add({
        accountId: null,
        address: 'ann@dest.test',
        scope: 'all',
        reason: 'r',
        source: 's',
      });
      await f.suppressions.recordBounce(bounce('ann@dest.test', a2, 'hard'));
      const r = await f.privacy.finish('ann@dest.test', a1, NO_COUNTS, 0);
      expect(r.done && r.result.counts).toMatchObject({ messages: 1, bounces: 0, suppressionsKeptAsHash: 0 });
      expect(await f.privacy.candidates('ann@dest.test', null)).toEqual([other]);
      expect((await f.suppressions.list({})).map((s) => s.address)).toEqual([
        'ann@dest.test',
        'ann@dest.test',
      ]);
    });

    it('returns the late messages and writes nothing when more than a chunk arrived', async () => {
      for (let i = 0; i < 201; i++) await f.insert(message(['ann@dest.test']));
      const r = await f.privacy.finish('ann@dest.test', null, NO_COUNTS, 0);
      expect(r.done).toBe(false);
      if (r.done) return;
      expect(r.late).toHaveLength(201);
      expect(await count(f, 'messages')).toBe(201);
      expect(await f.privacy.erasures()).toBe(0);
    });

    it('exports the messages, events, bounces, suppressions and tokens of an address', async () => {
      const a1 = await account(f, 'a1');
      const toAnn = await f.insert(message(['Ann@dest.test', 'bob@dest.test'], { accountId: a1 }));
      const fromAnn = await f.insert(message(['bob@dest.test'], { from: 'ann@dest.test', accountId: a1 }));
      const mentions = await f.insert(message(['bob@dest.test'], { mentions: ['ann@dest.test'], body: 'x' }));
      await f.sql('UPDATE messages SET body = ? WHERE id = ?', Buffer.alloc(0), mentions);
      await f.suppressions.add({
        accountId: a1,
        address: 'ann@dest.test',
        scope: 'all',
        reason: 'r',
        source: 's',
      });
      await f.suppressions.add({
        accountId: 99,
        address: 'ann@dest.test',
        scope: 'all',
        reason: 'r',
        source: 's',
      });
      await f.suppressions.recordBounce(bounce('ann@dest.test', a1, 'hard'));
      await f.suppressions.unsubscribeToken(a1, 'ann@dest.test', DAY);
      const ids = await messagesNaming({ privacy: f.privacy } as Spool, 'ann@dest.test', a1);
      expect(ids.sort()).toEqual([toAnn, fromAnn].sort());
      const doc = await f.privacy.export('ANN@dest.test', a1, [toAnn, fromAnn, mentions]);
      expect(doc.address).toBe('ann@dest.test');
      expect(doc.generatedAt).toBe(new Date(f.clock.now()).toISOString());
      const messages = doc.messages as {
        id: string;
        role: string;
        body: string | null;
        recipients: { address: string }[];
      }[];
      expect(messages.map((m) => [m.id, m.role, m.recipients.map((r) => r.address)])).toEqual([
        [toAnn, 'recipient', ['Ann@dest.test']],
        [fromAnn, 'sender', []],
        [mentions, 'mentioned', []],
      ]);
      expect(messages[2]!.body).toBeNull();
      expect(
        (doc.events as { message_id: string; type: string }[]).map((e) => [e.message_id, e.type]),
      ).toEqual([
        [toAnn, 'reception'],
        [fromAnn, 'reception'],
        [mentions, 'reception'],
      ]);
      expect(doc.bounces).toHaveLength(1);
      expect(doc.suppressions).toHaveLength(1);
      expect(doc.unsubscribeTokens).toHaveLength(1);
      expect(doc.unsubscribeTokens[0]).toEqual({
        account_id: a1,
        created_at: new Date(f.clock.now()).toISOString(),
        expires_at: new Date(f.clock.now() + DAY).toISOString(),
      });
      expect((await f.privacy.export('ann@dest.test', null, [])).suppressions).toHaveLength(2);
    });

    it('finds messages stored without their mentions by decoding their bodies, and erases them', async () => {
      const body = [
        'From: a@example.com',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from('ask zed@dest.test').toString('base64'),
        '',
      ].join('\r\n');
      const legacy = await f.insert(message(['r@else.test'], { body, mentions: undefined }));
      const indexed = await f.insert(
        message(['r@else.test'], { body, mentions: mentionedAddresses(Buffer.from(body)) }),
      );
      await f.insert(message(['r@else.test'], { body: 'Subject: other\r\n\r\nnobody\r\n' }));
      const spool = { privacy: f.privacy } as Spool;
      expect(await f.privacy.candidates('zed@dest.test', null)).toEqual([indexed]);
      expect((await messagesNaming(spool, 'zed@dest.test', null)).sort()).toEqual([legacy, indexed].sort());
      const report = await eraseAddress(spool, 'ZED@dest.test', { accountId: null, waitMs: 1000 });
      expect(report.counts.messages).toBe(2);
      expect(report.scrubbed).toBe(true);
      expect(await count(f, 'messages')).toBe(1);
      expect(await messagesNaming(spool, 'zed@dest.test', null)).toEqual([]);
    });

    it('sweeps the bodies of finished messages and old records past their age, and nothing younger or unfinished', async () => {
      const delivered = (id: string) =>
        f.sql("UPDATE recipients SET state = 'delivered' WHERE message_id = ?", id);
      const body = async (id: string) =>
        Number(
          (await f.sql<{ n: number }>('SELECT length(body) AS n FROM messages WHERE id = ?', id))[0]?.n ?? -1,
        );
      const old = await f.insert(message(['a@dest.test']));
      await delivered(old);
      const pending = await f.insert(message(['b@hold.test']));
      await f.suppressions.recordBounce(bounce('c@dest.test', null, 'hard'));
      await f.suppressions.unsubscribeToken(null, 'c@dest.test', DAY);
      f.clock.advance(10 * DAY);
      const young = await f.insert(message(['d@dest.test']));
      await delivered(young);
      const now = f.clock.now();
      expect(await f.privacy.sweep(now, 7 * DAY, 90 * DAY)).toEqual({
        bodies: 1,
        messages: 0,
        events: 0,
        bounces: 0,
      });
      expect(await body(old)).toBe(0);
      expect(await body(young)).toBeGreaterThan(0);
      expect(await body(pending)).toBeGreaterThan(0);
      expect(await count(f, 'unsubscribe_tokens')).toBe(0);
      f.clock.advance(85 * DAY);
      // The receptions of the old and the pending message; the young one's stays.
      expect(await f.privacy.sweep(f.clock.now(), 7 * DAY, 90 * DAY)).toEqual({
        bodies: 1,
        messages: 1,
        events: 2,
        bounces: 1,
      });
      expect(await body(old)).toBe(-1);
      expect(await body(pending)).toBeGreaterThan(0);
      expect((await f.events.after(0, 10)).map((e) => e.msgId)).toEqual([young]);
    });
  });
});

describe.skipIf(!POSTGRES.available)('the two backends', () => {
  it('key addresses, sign tokens and plan bounces alike, and export the same document', async () => {
    const sqlite = await sqliteBackend.open();
    const pg = await postgresBackend((name) => server!.database(name)).open({ secret: sqlite.secret });
    try {
      const docs = [];
      for (const f of [sqlite, pg]) {
        expect(f.suppressions.addressKey('Ann@Dest.test')).toBe(
          sqlite.suppressions.addressKey('ann@dest.test'),
        );
        const input = { ...bounce('Ann@dest.test', null, 'soft'), recipientId: 1 };
        const rule = { scope: 'all' as const, reason: 'soft', source: 'dsn', soft: { limit: 2, since: 0 } };
        expect(f.suppressions.planBounce(input, rule)).toEqual(sqlite.suppressions.planBounce(input, rule));
        const a = await account(f, 'a1');
        const ids = [
          await f.insert(message(['ann@dest.test', 'bob@dest.test'], { accountId: a })),
          await f.insert(message(['bob@dest.test'], { from: 'Ann@dest.test', mentions: ['ann@dest.test'] })),
        ];
        await f.suppressions.add({
          accountId: a,
          address: 'ann@dest.test',
          scope: 'marketing',
          reason: 'r',
          source: 's',
        });
        await f.suppressions.recordBounce(bounce('ann@dest.test', a, 'soft'));
        const token = await f.suppressions.unsubscribeToken(a, 'ann@dest.test', DAY);
        await f.events.record({
          type: 'feedback',
          msgId: ids[0]!,
          recipientId: null,
          accountId: a,
          domain: 'dest.test',
          details: { k: 1 },
        });
        const doc = await f.privacy.export('ann@dest.test', null, ids);
        // Ids are each database's own.
        const text = JSON.stringify(doc)
          .replaceAll(ids[0]!, 'M0')
          .replaceAll(ids[1]!, 'M1')
          .replaceAll(/"(id|recipient_id)":\d+/g, '"$1":0');
        docs.push({ text, token });
      }
      expect(docs[1]!.text).toBe(docs[0]!.text);
      // A token one backend signed resolves on the other, once its row is there too.
      const [row] = await sqlite.sql<Record<string, unknown>>('SELECT * FROM unsubscribe_tokens');
      await pg.sql('DELETE FROM unsubscribe_tokens');
      await pg.sql(
        'INSERT INTO unsubscribe_tokens (token, account_id, address_hash, address, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
        row!['token'],
        row!['account_id'],
        row!['address_hash'],
        row!['address'],
        row!['created_at'],
        row!['expires_at'],
      );
      expect(await pg.suppressions.resolveUnsubscribeToken(docs[0]!.token)).toEqual({
        accountId: 1,
        address: 'ann@dest.test',
      });
    } finally {
      await sqlite.close();
      await pg.close();
    }
  });
});

describe.skipIf(!POSTGRES.available)('the PostgreSQL privacy store', () => {
  const open = (options: { vacuumFull?: boolean } = {}) =>
    postgresBackend((name) => server!.database(name)).open({ privacy: options });

  it('makes the last erasure transaction wait for a message insert under way, and erase that message too', async () => {
    const f = await open();
    try {
      await f.insert(message(['ann@dest.test']));
      const [{ db }] = (await f.sql<{ db: string }>('SELECT current_database() AS db')) as [{ db: string }];
      const writer = new pg.Client({ connectionString: await server!.database(db) });
      await writer.connect();
      // As the writer inserts a message: the erasure lock shared first, then the rows; no commit yet.
      await writer.query('BEGIN');
      await shareErasureLock({
        rows: async (sql, params) => (await writer.query(sql, params as unknown[])).rows,
        run: async (sql, params) => (await writer.query(sql, params as unknown[])).rowCount ?? 0,
      });
      await writer.query(
        `INSERT INTO messages (id, mail_from, size, body, listener, received_at, mentions_indexed)
         VALUES ('LATE', 'ann@dest.test', 1, decode('41', 'hex'), 'test', 0, 1)`,
      );
      const finishing = f.privacy.finish('ann@dest.test', null, NO_COUNTS, 0);
      await until('the erasure waiting for the lock', async () => {
        const rows = await f.sql("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
        return rows.length > 0;
      });
      await writer.query('COMMIT');
      await writer.end();
      const r = await finishing;
      expect(r.done && r.result.counts.messages).toBe(2);
      expect(await count(f, 'messages')).toBe(0);
    } finally {
      await f.close();
    }
  });

  /** Files under the server's base/ and pg_wal/ holding `needle`, named by their relation. */
  async function holding(f: StoreFixture, needle: string): Promise<{ base: string[]; wal: string[] }> {
    const names = new Map(
      (
        await f.sql<{ path: string; name: string }>(
          `SELECT pg_relation_filepath(oid) AS path, relname AS name FROM pg_class
           WHERE pg_relation_filepath(oid) IS NOT NULL`,
        )
      ).map((r) => [r.path, r.name]),
    );
    const dir = server!.dataDir;
    const hits = [...filesUnder(join(dir, 'base')), ...filesUnder(join(dir, 'pg_wal'))]
      .filter((file) => readFileSync(file).toString('latin1').toLowerCase().includes(needle))
      .map((file) => relative(dir, file));
    return {
      base: hits.filter((p) => p.startsWith('base/')).map((p) => names.get(p) ?? p),
      wal: hits.filter((p) => p.startsWith('pg_wal/')),
    };
  }

  /** A message naming `address` plainly in its envelope and body, among others' data, then erased. */
  async function eraseAmongOthers(f: StoreFixture, address: string): Promise<void> {
    const others = async (from: number) => {
      for (let i = from; i < from + 5; i++) {
        const a = `keep${i}@else.test`;
        await f.insert(message([a], { body: `Subject: ${i}\r\n\r\nfor ${a}\r\n`, mentions: [a] }));
        await f.suppressions.add({ accountId: null, address: a, scope: 'all', reason: 'r', source: 's' });
        await f.suppressions.recordBounce(bounce(a, null, 'hard'));
        await f.suppressions.unsubscribeToken(null, a, DAY);
      }
    };
    await others(0);
    const body = `From: ${address}\r\nSubject: hi\r\n\r\nWrite to ${address} please.\r\n`;
    await f.insert(message([address, 'bob@else.test'], { from: address, body, mentions: [address] }));
    await f.suppressions.add({ accountId: null, address, scope: 'all', reason: 'r', source: 's' });
    await f.suppressions.recordBounce({
      ...bounce(address, null, 'hard'),
      diagnostic: `550 <${address}> unknown`,
    });
    await f.suppressions.unsubscribeToken(null, address, DAY);
    await f.events.record({
      type: 'unsubscribe',
      msgId: null,
      recipientId: null,
      accountId: null,
      domain: 'dest.test',
      address,
      details: {},
    });
    await others(5);
    // As autovacuum would: statistics sample the columns, the address among them.
    await f.sql('ANALYZE');
    await f.sql('CHECKPOINT');
    expect((await holding(f, address)).base).toEqual(expect.arrayContaining(['messages', 'pg_statistic']));
    const report = await eraseAddress({ privacy: f.privacy } as Spool, address, {
      accountId: null,
      waitMs: 1000,
    });
    expect(report).toMatchObject({ scrubbed: true, counts: { messages: 1, suppressionsKeptAsHash: 1 } });
    expect(await f.privacy.export(address, null, [])).toMatchObject({ bounces: [], unsubscribeTokens: [] });
  }

  it('scrubs an erased address out of every relation but the free space of the touched tables, and not out of the WAL', async () => {
    const f = await open();
    try {
      const address = 'zqxpgscrub7@dest.test';
      await eraseAmongOthers(f, address);
      const found = await holding(f, address);
      // No live row or statistic quotes it; the pages of the tables erasure deleted from, and of
      // pg_statistic, may keep its bytes in their free space (VACUUM does not overwrite it).
      const touched =
        /^(messages|recipients|events|bounces|unsubscribe_tokens|suppressions)(_[a-z_]+)?$|^pg_statistic$/;
      for (const name of found.base) expect(name).toMatch(touched);
      const quoted = await f.sql(
        `SELECT attname FROM pg_stats WHERE concat(most_common_vals::text, histogram_bounds::text) LIKE ?`,
        `%${address}%`,
      );
      expect(quoted).toEqual([]);
      // The WAL keeps it until its segments are recycled and overwritten.
      expect(found.wal.length).toBeGreaterThan(0);
    } finally {
      await f.close();
    }
  });

  it('with VACUUM FULL, leaves no byte of an erased address in any file under base/', async () => {
    const f = await open({ vacuumFull: true });
    try {
      const address = 'zqxpgfull8@dest.test';
      await eraseAmongOthers(f, address);
      expect((await holding(f, address)).base).toEqual([]);
    } finally {
      await f.close();
    }
  });
});
