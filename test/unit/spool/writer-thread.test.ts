import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { openSpool } from '../../../src/spool/index.js';

// The writer thread loads its compiled script (dist/spool/writer-worker.js): `npm test` builds first.
const { threadWriter } = (await import(
  pathToFileURL(resolve('dist/spool/writer.js')).href
)) as typeof import('../../../src/spool/writer.js');

describe('spool writer thread', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('commits on the thread, and close waits for writes under way', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-writer-'));
    const spool = openSpool(dir);
    const fatal: Error[] = [];
    const writer = threadWriter(spool.path, (e) => fatal.push(e));
    const id = spool.messages.newId();
    const insert = writer.run({
      op: 'insert',
      id,
      message: {
        accountId: null,
        mailFrom: 's@example.com',
        recipients: [{ address: 'r@dest.test', domain: 'dest.test' }],
        headerMessageId: null,
        body: Buffer.from('on the thread\r\n'),
        listener: 'submission',
      },
      now: Date.now(),
    });
    const closed = writer.close();
    await insert;
    await closed;
    await expect(writer.run({ op: 'probe', now: Date.now() })).rejects.toMatchObject({
      code: 'PETREL_SPOOL_WRITE',
    });
    expect((await spool.messages.get(id))?.body.toString()).toBe('on the thread\r\n');
    expect(fatal).toEqual([]);
    await spool.close();
  });

  it('reports a thread that cannot open the spool once, refuses writes, and still closes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-writer-'));
    // A directory where the database file should be: the thread fails as it starts.
    const path = join(dir, 'petrel.db');
    mkdirSync(path);
    const fatal: Error[] = [];
    const writer = threadWriter(path, (e) => fatal.push(e));
    await expect(writer.run({ op: 'probe', now: Date.now() })).rejects.toMatchObject({
      code: 'PETREL_SPOOL_WRITE',
    });
    await writer.close();
    expect(fatal).toHaveLength(1);
    await expect(writer.run({ op: 'probe', now: Date.now() })).rejects.toMatchObject({
      code: 'PETREL_SPOOL_WRITE',
    });
  });
});
