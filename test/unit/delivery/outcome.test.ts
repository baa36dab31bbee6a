import { describe, expect, it } from 'vitest';
import { kindOfReply, MAX_REPLY_TEXT, parseReply, sanitizeReplyText } from '../../../src/delivery/index.js';

describe('kindOfReply', () => {
  it('maps 2xx to delivered, 4xx to deferred and 5xx to failed', () => {
    expect(kindOfReply(250)).toBe('delivered');
    expect(kindOfReply(251)).toBe('delivered');
    expect(kindOfReply(421)).toBe('deferred');
    expect(kindOfReply(452)).toBe('deferred');
    expect(kindOfReply(550)).toBe('failed');
    expect(kindOfReply(554)).toBe('failed');
  });

  it('never fails a recipient for a reply outside 2xx-5xx', () => {
    expect(kindOfReply(354)).toBe('deferred');
    expect(kindOfReply(0)).toBe('deferred');
    expect(kindOfReply(699)).toBe('deferred');
  });
});

describe('parseReply', () => {
  it('splits code, enhanced status and text', () => {
    expect(parseReply('550 5.1.1 <x@example.com>: user unknown')).toEqual({
      code: 550,
      enhanced: '5.1.1',
      text: '<x@example.com>: user unknown',
    });
  });

  it('leaves enhanced empty when the server sends none', () => {
    expect(parseReply('250 Ok')).toEqual({ code: 250, enhanced: '', text: 'Ok' });
  });

  it('joins multi-line replies and drops the repeated enhanced code', () => {
    const raw = '550-5.7.1 Message rejected\n550-5.7.1 see https://example.com/why\n550 5.7.1 for details';
    expect(parseReply(raw)).toEqual({
      code: 550,
      enhanced: '5.7.1',
      text: 'Message rejected see https://example.com/why for details',
    });
  });

  it('ignores an enhanced code whose class contradicts the reply code', () => {
    expect(parseReply('451 5.7.1 odd server')).toEqual({ code: 451, enhanced: '', text: 'odd server' });
  });

  it('returns null for something that is not a reply', () => {
    expect(parseReply('')).toBeNull();
    expect(parseReply('hello')).toBeNull();
  });
});

describe('sanitizeReplyText', () => {
  it('removes CR, LF and control characters so a reply cannot inject header lines', () => {
    expect(sanitizeReplyText('bad\r\nBcc: evil@example.com\u0000\u0007 end')).toBe(
      'bad Bcc: evil@example.com end',
    );
  });

  it(`caps the text at ${MAX_REPLY_TEXT} characters`, () => {
    expect(sanitizeReplyText('x'.repeat(5000))).toHaveLength(MAX_REPLY_TEXT);
  });
});
