import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool, openSqlite } from '../../../src/spool/index.js';

describe('prepared statements', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // On Node 24, better-sqlite3 12 aborts the whole process when the garbage collector finalizes a
  // statement in a microtask checkpoint; queries and PRAGMAs under a promise storm provoke it.
  it('survives many queries and PRAGMAs under a promise storm: no statement is ever garbage', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-statements-'));
    const spool = openSpool(dir);
    let rows = 0;
    for (let round = 0; round < 40; round++) {
      await Promise.all(
        Array.from({ length: 1000 }, async (_, i) => {
          rows += (await spool.queue.list({ limit: 1, ...(i % 2 ? { domain: 'x.test' } : {}) })).length;
          await spool.dataVersion();
          return Buffer.alloc(2048);
        }),
      );
    }
    expect(rows).toBe(0);
    expect(await spool.pragma('synchronous')).toBe(2);
    await spool.close();
  });

  it('keeps every native object of a raw connection: one statement per SQL text, PRAGMAs and iterate() through it', () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-statements-'));
    const db = openSqlite(join(dir, 'raw.db'));
    db.exec('CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3)');
    const select = db.prepare('SELECT n FROM t ORDER BY n');
    expect(db.prepare('SELECT n FROM t ORDER BY n')).toBe(select);
    expect([...select.iterate()].map((r) => (r as { n: number }).n)).toEqual([1, 2, 3]);
    expect(db.pragma('journal_mode = WAL', { simple: true })).toBe('wal');
    expect(db.pragma('table_info(t)')).toMatchObject([{ name: 'n' }]);
    expect(db.pragma('busy_timeout = 100')).toEqual([{ timeout: 100 }]);
    expect(() => db.backup(join(dir, 'copy.db'))).toThrow(/VACUUM INTO/);
    db.close();
  });

  // Connections opened and closed in a loop are native objects too (Database::~Database aborts
  // the same way): none may be collected.
  it('survives raw connections opened, iterated and closed under a promise storm', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-statements-'));
    let seen = 0;
    for (let round = 0; round < 200; round++) {
      const db = openSqlite(join(dir, 'raw.db'));
      db.exec('CREATE TABLE IF NOT EXISTS t (n INTEGER)');
      db.prepare('INSERT INTO t VALUES (?)').run(round);
      for (const _row of db.prepare('SELECT n FROM t').iterate()) seen++;
      db.pragma('integrity_check', { simple: true });
      db.close();
      await Promise.all(Array.from({ length: 200 }, async () => Buffer.alloc(4096)));
    }
    expect(seen).toBe((200 * 201) / 2);
  });
});
