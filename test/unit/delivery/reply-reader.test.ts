import { describe, expect, it } from 'vitest';
import {
  MAX_REPLY_LINE,
  MAX_REPLY_LINES,
  ReplyReader,
  type WireReply,
} from '../../../src/delivery/reply-reader.js';

function feedAll(reader: ReplyReader, chunks: string[]): { replies: WireReply[]; error: string | null } {
  const replies: WireReply[] = [];
  let error: string | null = null;
  for (const chunk of chunks) {
    error = reader.feed(Buffer.from(chunk, 'utf8'), (r) => (replies.push(r), true));
    if (error !== null) break;
  }
  return { replies, error };
}

describe('ReplyReader', () => {
  it('joins a multi-line reply and keeps each line’s prefix, as parseReply reads it', () => {
    const { replies, error } = feedAll(new ReplyReader(), [
      '250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n',
    ]);
    expect(error).toBeNull();
    expect(replies).toEqual([{ code: 250, raw: '250-mx.example\n250-PIPELINING\n250 SIZE 100' }]);
  });

  it('completes replies split anywhere across chunks, and several replies in one chunk', () => {
    const text = '250 2.1.0 Ok\r\n550-5.1.1 no\r\n550 5.1.1 such user\r\n354 go ahead\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const { replies } = feedAll(new ReplyReader(), [text.slice(0, cut), text.slice(cut)]);
      expect(replies.map((r) => r.code)).toEqual([250, 550, 354]);
      expect(replies[1]!.raw).toBe('550-5.1.1 no\n550 5.1.1 such user');
    }
  });

  it('accepts bare LF line ends and a code without text', () => {
    const { replies } = feedAll(new ReplyReader(), ['220\n250 ok\n']);
    expect(replies.map((r) => r.raw)).toEqual(['220', '250 ok']);
  });

  it('stops at the first line that is not a reply', () => {
    expect(feedAll(new ReplyReader(), ['hello\r\n']).error).toMatch(/malformed/);
    expect(feedAll(new ReplyReader(), ['2500 x\r\n']).error).toMatch(/malformed/);
  });

  it('refuses a line longer than the bound, even when it never ends', () => {
    const reader = new ReplyReader();
    const chunk = 'x'.repeat(1024);
    let error: string | null = null;
    let fed = 0;
    for (; fed < 100 && error === null; fed++) error = reader.feed(Buffer.from(`250 ${chunk}`), () => true);
    expect(error).toMatch(/too long/);
    expect(fed * 1024).toBeLessThanOrEqual(MAX_REPLY_LINE + 2048);
  });

  it('refuses a multi-line reply that never ends', () => {
    const line = '250-more\r\n';
    const { replies, error } = feedAll(new ReplyReader(), [line.repeat(MAX_REPLY_LINES + 1)]);
    expect(replies).toEqual([]);
    expect(error).toMatch(/too many lines/);
  });

  it('hands out no more replies once the taker says stop', () => {
    const replies: number[] = [];
    new ReplyReader().feed(
      Buffer.from('250 a\r\n421 bye\r\n250 b\r\n'),
      (r) => (replies.push(r.code), r.code !== 421),
    );
    expect(replies).toEqual([250, 421]);
  });
});
