import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirectory, maskAddresses, secretsEqual } from '../../../src/shared/index.js';

describe('maskAddresses', () => {
  it('masks whole addresses, and the given local parts where they stand alone', () => {
    const locals = ['jsmith', 'anna.b'];
    expect(maskAddresses('550 5.1.1 <jsmith>: Recipient address rejected', locals)).toBe(
      '550 5.1.1 <[address]>: Recipient address rejected',
    );
    expect(maskAddresses('JSmith... User unknown; Anna.B over quota', locals)).toBe(
      '[address]... User unknown; [address] over quota',
    );
    expect(maskAddresses('mailbox jsmith2 and xjsmith are someone else', locals)).toBe(
      'mailbox jsmith2 and xjsmith are someone else',
    );
    expect(maskAddresses('<anna.b@dest.test> unknown, see bob@else.test', locals)).toBe(
      '<[address]> unknown, see [address]',
    );
  });

  it('treats local parts as text, not as patterns, and masks nothing twice', () => {
    expect(maskAddresses('a+b rejected, a.b fine', ['a+b'])).toBe('[address] rejected, a.b fine');
    expect(maskAddresses('address unknown', ['address'])).toBe('[address] unknown');
  });
});

describe('secretsEqual', () => {
  it('is true only for the same secret, whatever the lengths', () => {
    expect(secretsEqual('Bearer abc', 'Bearer abc')).toBe(true);
    expect(secretsEqual('Bearer ab', 'Bearer abc')).toBe(false);
    expect(secretsEqual('', 'Bearer abc')).toBe(false);
    expect(secretsEqual('Bearer abd', 'Bearer abc')).toBe(false);
  });
});

describe('makeDirectory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-dir-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a path that reaches /proc through a symlink, and makes ordinary ones', () => {
    symlinkSync('/proc', join(dir, 'link'));
    expect(() => makeDirectory(join(dir, 'link', 'petrel', 'var'), 0o750)).toThrow(/lies under \/proc/);
    makeDirectory(join(dir, 'a', 'b'), 0o750);
    expect(() => makeDirectory(join(dir, 'a', 'b'), 0o750)).not.toThrow();
  });
});
