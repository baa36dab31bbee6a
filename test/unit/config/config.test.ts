import { describe, expect, it } from 'vitest';
import { ipInCidrs, parseCidr, parseConfig, parseDuration, parseListen, parseSize } from '../../../src/config/index.js';

describe('config units', () => {
  it('parses durations and sizes', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('3d')).toBe(259_200_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('soon')).toBeNull();
    expect(parseSize('25MB')).toBe(25 * 1024 * 1024);
    expect(parseSize('512kb')).toBe(512 * 1024);
    expect(parseSize('12 parsecs')).toBeNull();
  });
  it('parses listen addresses, IPv6 in brackets', () => {
    expect(parseListen('127.0.0.1:2587')).toEqual({ host: '127.0.0.1', port: 2587 });
    expect(parseListen('[::1]:25')).toEqual({ host: '::1', port: 25 });
    expect(parseListen('127.0.0.1:70000')).toBeNull();
    expect(parseListen('::1:25')).toBeNull();
  });
  it('matches IPv4, IPv6 and v4-mapped addresses against CIDR blocks', () => {
    const cidrs = [parseCidr('10.1.0.0/16')!, parseCidr('2001:db8::/32')!, parseCidr('127.0.0.2')!];
    expect(ipInCidrs('10.1.200.3', cidrs)).toBe(true);
    expect(ipInCidrs('10.2.0.1', cidrs)).toBe(false);
    expect(ipInCidrs('::ffff:10.1.0.9', cidrs)).toBe(true);
    expect(ipInCidrs('2001:db8:1::5', cidrs)).toBe(true);
    expect(ipInCidrs('2001:db9::5', cidrs)).toBe(false);
    expect(ipInCidrs('127.0.0.1', cidrs)).toBe(false);
    expect(ipInCidrs('127.0.0.2', cidrs)).toBe(true);
    expect(parseCidr('10.0.0.0/33')).toBeNull();
  });
});

describe('parseConfig', () => {
  it('fills every default from an empty file, as DESIGN documents them', () => {
    const c = parseConfig({}, 'test');
    expect(c.data_dir).toBe('./var');
    expect(c.submission.listen).toEqual([{ host: '127.0.0.1', port: 2587 }]);
    expect(c.submission.max_message_size).toBe(25 * 1024 * 1024);
    expect(c.submission.max_recipients).toBe(100);
    expect(c.inbound.listen).toEqual([{ host: '127.0.0.1', port: 2525 }]);
    expect(c.http.listen).toEqual({ host: '127.0.0.1', port: 8025 });
    expect(Object.isFrozen(c.submission)).toBe(true);
  });
  it('names the key of the first problem in one line', () => {
    expect(() => parseConfig({ submission: { max_recipients: 'many' } }, 'f.toml')).toThrow(
      /^f\.toml: submission\.max_recipients: /,
    );
    expect(() => parseConfig({ delivery: { domain: { 'a.org': { tls: 'maybe' } } } }, 'f')).toThrow(
      /delivery\.domain\.a\.org\.tls|delivery\.domain\."a\.org"\.tls/,
    );
    expect(() => parseConfig({ bogus: 1 }, 'f')).toThrow(/^f: bogus: unknown key$/);
  });
});
