import { mkdtempSync, rmSync, statSync } from 'node:fs';
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
});
