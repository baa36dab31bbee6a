import { describe, expect, it } from 'vitest';
import { hasEightBit, wireAddress } from '../../../src/delivery/wire.js';

describe('wireAddress', () => {
  it('sends ASCII addresses unchanged', () => {
    expect(wireAddress('alice@example.com', false)).toBe('alice@example.com');
    expect(wireAddress('', false)).toBe('');
  });

  it('downgrades an internationalized domain to A-labels when the server lacks SMTPUTF8', () => {
    expect(wireAddress('info@bücher.example', false)).toBe('info@xn--bcher-kva.example');
  });

  it('cannot downgrade a non-ASCII local part', () => {
    expect(wireAddress('用户@例子.广告', false)).toBeNull();
  });

  it('keeps UTF-8 as is when the server supports SMTPUTF8', () => {
    expect(wireAddress('用户@例子.广告', true)).toBe('用户@例子.广告');
  });
});

describe('hasEightBit', () => {
  it('detects bytes above 0x7f', () => {
    expect(hasEightBit(Buffer.from('Subject: hi\r\n\r\nplain\r\n'))).toBe(false);
    expect(hasEightBit(Buffer.from('Subject: hi\r\n\r\ngrüße\r\n'))).toBe(true);
  });
});
