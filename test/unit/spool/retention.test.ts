import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool } from '../../../src/spool/index.js';

const DAY = 86_400_000;

describe('retention sweep', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('drops bodies of finished messages and old events past their age, and nothing younger or unfinished', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-retention-'));
    let now = Date.UTC(2026, 0, 1);
    const spool = openSpool(dir, { clock: { now: () => now } });
    const add = async (tag: string, domain = 'dest.test'): Promise<string> => {
      const id = spool.messages.newId();
      await spool.messages.insert(id, {
        accountId: null,
        mailFrom: 'a@example.com',
        recipients: [{ address: `${tag}@${domain}`, domain }],
        headerMessageId: null,
        body: Buffer.from(`Subject: ${tag}\r\n\r\nbody\r\n`),
        listener: 'submission',
      });
      return id;
    };
    const finish = async (): Promise<void> => {
      const due = (
        await spool.queue.leaseDue({
          holder: 'h1',
          limit: 100,
          leaseMs: 60_000,
          room: {},
          newDomainRoom: 1000,
        })
      ).due;
      await spool.queue.complete(
        'h1',
        due.map((r) => ({
          recipientId: r.id,
          messageId: r.messageId,
          accountId: null,
          domain: r.domain,
          state: 'delivered' as const,
          event: 'delivery' as const,
          attempted: true,
          reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
          mx: 'mx',
        })),
      );
    };
    const old = await add('old');
    await finish();
    // Held by a suspension, so it stays queued: unfinished messages keep their bodies.
    await spool.queue.suspend('hold.test', 'test');
    const oldUnfinished = await add('pending', 'hold.test');
    now += 10 * DAY;
    const young = await add('young');
    await finish();

    const counts = await spool.privacy.sweep(now, 7 * DAY, 90 * DAY);
    expect(counts).toEqual({ bodies: 1, messages: 0, events: 0, bounces: 0 });
    expect((await spool.messages.get(old))!.body.length).toBe(0);
    expect((await spool.messages.get(young))!.body.toString()).toContain('young');
    expect((await spool.messages.get(oldUnfinished))!.body.toString()).toContain('pending');
    expect((await spool.queue.events(old)).length).toBe(2);

    now += 85 * DAY;
    const later = await spool.privacy.sweep(now, 7 * DAY, 90 * DAY);
    // The two of the old message and the reception of the held one; the young message's stay.
    expect(later.events).toBe(3);
    expect((await spool.queue.events(young)).length).toBe(2);
    expect(later.messages).toBe(1);
    expect(await spool.messages.get(old)).toBeNull();
    expect(await spool.messages.get(young)).not.toBeNull();
    expect(await spool.messages.get(oldUnfinished)).not.toBeNull();
    await spool.close();
  });
});
