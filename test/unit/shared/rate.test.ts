import { describe, expect, it } from 'vitest';
import { formatRateLimit, parseRateLimit } from '../../../src/shared/rate.js';
import { parseRate } from '../../../src/queue/shaping.js';

describe('rates as written', () => {
  it('reads a count per second, minute or hour and writes it back', () => {
    expect(parseRateLimit('100/s')).toEqual({ count: 100, windowMs: 1000 });
    expect(parseRateLimit('600/min')).toEqual({ count: 600, windowMs: 60_000 });
    expect(parseRateLimit('5000/hour')).toEqual({ count: 5000, windowMs: 3_600_000 });
    expect(formatRateLimit(parseRateLimit('20/sec')!)).toBe('20/s');
    expect(formatRateLimit(parseRateLimit('600/m')!)).toBe('600/min');
    expect(formatRateLimit(parseRateLimit('5000/h')!)).toBe('5000/h');
  });

  it('refuses anything else', () => {
    for (const bad of [
      'unlimited',
      '',
      '10',
      '10/d',
      '-1/s',
      '1.5/s',
      ' 10/s',
      '10/s ',
      '99999999999999999999/s',
    ])
      expect(parseRateLimit(bad)).toBeNull();
  });

  it('gives delivery shaping the same rates per second', () => {
    expect(parseRate('600/min')).toBe(10);
    expect(parseRate('0/s')).toBe(0);
    expect(parseRate('unlimited')).toBe(Infinity);
  });
});
