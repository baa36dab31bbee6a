import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockDataDir } from '../../../src/spool/index.js';

// Leases themselves are in the spool's contract tests (test/integration/spool-contract.test.ts).
describe('data dir lock', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lets one process at a time hold a data dir, and frees it when released', () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-lock-'));
    const first = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(expect.objectContaining({ code: 'PETREL_SPOOL_LOCKED' }));
    first.release();
    lockDataDir(dir).release();
  });
});
