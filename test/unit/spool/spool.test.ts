import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool, type NewMessage } from '../../../src/spool/index.js';

describe('spool', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('opens every connection, including on an existing WAL database, with synchronous=FULL and secure_delete', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-spool-'));
    const first = openSpool(dir);
    expect(await first.pragma('journal_mode')).toBe('wal');
    // A second connection while the first is open, and a third after both closed.
    const second = openSpool(dir);
    for (const s of [first, second]) {
      expect(await s.pragma('synchronous')).toBe(2);
      expect(await s.pragma('secure_delete')).toBe(1);
    }
    await first.close();
    await second.close();
    const third = openSpool(dir);
    expect(await third.pragma('synchronous')).toBe(2);
    expect(await third.pragma('secure_delete')).toBe(1);
    await third.close();
  });

  it('closes with a passive checkpoint, leaving the WAL to the connection still open (the daemon)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-spool-'));
    const daemon = openSpool(dir);
    const cli = openSpool(dir);
    await cli.accounts.add('shop', 'scrypt$x', ['shop.example']);
    const wal = `${cli.path}-wal`;
    expect(statSync(wal).size).toBeGreaterThan(0);
    // wal_checkpoint(TRUNCATE) would wait for the daemon's writer and empty the file.
    await cli.close();
    expect(statSync(wal).size).toBeGreaterThan(0);
    expect((await daemon.accounts.get('shop'))?.allowedDomains).toEqual(['shop.example']);
    await daemon.close();
  });

  it('commits concurrent inserts together and resolves each only once it is stored', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-spool-'));
    const spool = openSpool(dir);
    const ids = Array.from({ length: 50 }, () => spool.messages.newId());
    expect(new Set(ids).size).toBe(50);
    await Promise.all(
      ids.map((id, i) =>
        spool.messages.insert(id, {
          accountId: null,
          mailFrom: 'a@example.com',
          recipients: [{ address: `r${i}@dest.test`, domain: 'dest.test' }],
          headerMessageId: `<${i}@x>`,
          body: Buffer.from(`body ${i}\r\n`),
          listener: 'submission',
        }),
      ),
    );
    expect(await spool.messages.count()).toBe(50);
    const m = await spool.messages.get(ids[7]!);
    expect(m?.body.toString()).toBe('body 7\r\n');
    expect(m?.recipients[0]).toMatchObject({ address: 'r7@dest.test', state: 'queued', attempts: 0 });
    await spool.close();
  });

  it('queues follow-ups only for outcomes that applied, when a recipient left flight meanwhile', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-spool-'));
    const spool = openSpool(dir);
    const id = spool.messages.newId();
    const message = (rcpts: string[], body: string): NewMessage => ({
      accountId: null,
      mailFrom: '',
      recipients: rcpts.map((address) => ({ address, domain: 'dest.test' })),
      headerMessageId: null,
      body: Buffer.from(body),
      listener: 'submission',
    });
    await spool.messages.insert(id, {
      ...message(['a@dest.test', 'b@dest.test'], 'original\r\n'),
      mailFrom: 's@example.com',
    });
    const leased = (
      await spool.queue.leaseDue({ holder: 'h1', limit: 10, leaseMs: 60_000, room: {}, newDomainRoom: 1000 })
    ).due;
    expect(leased.map((r) => r.address).sort()).toEqual(['a@dest.test', 'b@dest.test']);
    const b = leased.find((r) => r.address === 'b@dest.test')!;
    // b goes back to the queue (as at shutdown), so its outcome below must not apply.
    await spool.queue.release('h1', [b.id]);
    const seen: string[][] = [];
    const dsnIds: string[] = [];
    const applied = await spool.queue.complete(
      'h1',
      leased.map((r) => ({
        recipientId: r.id,
        messageId: id,
        accountId: null,
        domain: 'dest.test',
        state: 'bounced' as const,
        event: 'bounce' as const,
        attempted: true,
        mx: null,
        reply: { code: 550, enhanced: '5.1.1', text: 'no' },
      })),
      (done) => {
        const addresses = done.map((u) => leased.find((r) => r.id === u.recipientId)!.address).sort();
        seen.push(addresses);
        const dsnId = spool.messages.newId();
        dsnIds.push(dsnId);
        return [{ id: dsnId, message: message(['s@example.com'], `failed: ${addresses.join(',')}\r\n`) }];
      },
    );
    expect(applied.map((u) => u.recipientId)).toEqual([leased.find((r) => r.address === 'a@dest.test')!.id]);
    expect(seen).toEqual([['a@dest.test', 'b@dest.test'], ['a@dest.test']]);
    expect(await spool.messages.get(dsnIds[0]!)).toBeNull();
    expect((await spool.messages.get(dsnIds[1]!))?.body.toString()).toBe('failed: a@dest.test\r\n');
    expect((await spool.messages.get(id))?.recipients.map((r) => r.state)).toEqual(['bounced', 'queued']);
    await spool.close();
  });

  it('refuses a duplicate account name', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-spool-'));
    const spool = openSpool(dir);
    await spool.accounts.add('app', 'h', ['example.com']);
    await expect(spool.accounts.add('app', 'h', ['example.com'])).rejects.toMatchObject({
      code: 'PETREL_ACCOUNT_EXISTS',
    });
    expect((await spool.accounts.list()).map((a) => a.name)).toEqual(['app']);
    await spool.close();
  });
});
