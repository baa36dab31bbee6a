import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool } from '../../../src/spool/index.js';

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

  it('refuses a duplicate account name', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-spool-'));
    const spool = openSpool(dir);
    await spool.accounts.add('app', 'h', ['example.com']);
    await expect(spool.accounts.add('app', 'h', ['example.com'])).rejects.toMatchObject({ code: 'PETREL_ACCOUNT_EXISTS' });
    expect((await spool.accounts.list()).map((a) => a.name)).toEqual(['app']);
    await spool.close();
  });
});
