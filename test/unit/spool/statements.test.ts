import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool } from '../../../src/spool/index.js';

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
});
