import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockDataDir, openSpool, type Spool } from '../../../src/spool/index.js';

const update = (id: number, messageId: string) => ({
  recipientId: id,
  messageId,
  accountId: null,
  domain: 'dest.test',
  state: 'delivered' as const,
  event: 'delivery' as const,
  attempted: true,
  mx: 'mx',
  reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
});

describe('leases', () => {
  let dir = '';
  let spool: Spool | undefined;
  let now = Date.UTC(2026, 0, 1);
  afterEach(async () => {
    await spool?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const setup = async (
    recipients: { address: string; domain: string }[],
  ): Promise<{ spool: Spool; id: string }> => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-leases-'));
    spool = openSpool(dir, { clock: { now: () => now } });
    const id = spool.messages.newId();
    await spool.messages.insert(id, {
      accountId: null,
      mailFrom: 'a@example.com',
      recipients,
      headerMessageId: null,
      body: Buffer.from('x\r\n'),
      listener: 'submission',
    });
    return { spool, id };
  };
  const lease = (
    s: Spool,
    holder: string,
    limit = 10,
    room: Record<string, number> = {},
    newDomainRoom = 100,
  ) => s.queue.leaseDue({ holder, limit, leaseMs: 1000, room, newDomainRoom });

  it('keeps a lease for its holder until it lapses, then gives it to another, whose outcome alone applies', async () => {
    const { spool: s, id } = await setup([{ address: 'a@dest.test', domain: 'dest.test' }]);
    const [r] = (await lease(s, 'h1')).due;
    expect(r).toBeDefined();
    now += 500;
    expect((await lease(s, 'h2')).due).toHaveLength(0);
    // Renewed at 500 ms, so still held at 1 200 ms.
    expect(await s.queue.renew('h1', [r!.id], now + 1000)).toBe(1);
    now += 700;
    expect((await lease(s, 'h2')).due).toHaveLength(0);
    now += 1000;
    const [again] = (await lease(s, 'h2')).due;
    expect(again?.id).toBe(r!.id);
    expect(again?.attempts).toBe(0);
    // The first holder lost it: its outcome, renewal and release change nothing.
    expect(await s.queue.complete('h1', [update(r!.id, id)])).toEqual([]);
    expect(await s.queue.renew('h1', [r!.id], now + 1000)).toBe(0);
    await s.queue.release('h1', [r!.id]);
    expect(await s.queue.fenced('h1', [r!.id])).toEqual([r!.id]);
    expect(await s.queue.fenced('h2', [r!.id])).toEqual([]);
    expect((await s.queue.complete('h2', [update(r!.id, id)])).map((u) => u.recipientId)).toEqual([r!.id]);
    expect((await s.messages.get(id))!.recipients[0]!.state).toBe('delivered');
  });

  it('recovers at start-up only the leases of other holders', async () => {
    const { spool: s } = await setup([
      { address: 'a@dest.test', domain: 'dest.test' },
      { address: 'b@other.test', domain: 'other.test' },
    ]);
    await lease(s, 'old', 10, { 'other.test': 0 });
    await lease(s, 'live');
    expect(await s.queue.recoverInflight('live')).toBe(1);
    const counts = await s.queue.counts();
    expect([counts.queued, counts.inflight]).toEqual([1, 1]);
  });

  it('gives each destination at most its room, and none to one that has no room', async () => {
    const { spool: s } = await setup([
      ...Array.from({ length: 20 }, (_, i) => ({ address: `r${i}@busy.test`, domain: 'busy.test' })),
      ...Array.from({ length: 5 }, (_, i) => ({ address: `r${i}@new.test`, domain: 'new.test' })),
      { address: 'x@full.test', domain: 'full.test' },
    ]);
    const { due, more } = await lease(s, 'h', 100, { 'busy.test': 3, 'full.test': 0 }, 2);
    const byDomain = (d: string): number => due.filter((r) => r.domain === d).length;
    expect([byDomain('busy.test'), byDomain('new.test'), byDomain('full.test')]).toEqual([3, 2, 0]);
    expect(more).toBe(true);
  });

  it('lets one process at a time hold a data dir, and frees it when released', () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-leases-'));
    const first = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(expect.objectContaining({ code: 'PETREL_SPOOL_LOCKED' }));
    first.release();
    lockDataDir(dir).release();
  });
});
