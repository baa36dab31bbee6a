import { describe, expect, it } from 'vitest';
import {
  ipInCidrs,
  parseCidr,
  parseConfig,
  parseDuration,
  parseListen,
  parseSize,
} from '../../../src/config/index.js';

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

describe('parseConfig refuses settings that would quietly break mail', () => {
  it.each([
    [
      'a zero message size (every message 552)',
      { submission: { max_message_size: 0 } },
      /^f: submission\.max_message_size: must be more than 0$/,
    ],
    [
      'a zero message size as text',
      { submission: { max_message_size: '0MB' } },
      /^f: submission\.max_message_size: must be more than 0$/,
    ],
    [
      'fewer recipients than RFC 5321 requires',
      { submission: { max_recipients: 99 } },
      /^f: submission\.max_recipients: must be at least 100/,
    ],
    [
      'trusted networks without an account',
      { submission: { trusted_networks: ['10.0.0.0/8'] } },
      /^f: submission\.trusted_account: required when trusted_networks is set/,
    ],
    [
      'a data_dir under /proc',
      { data_dir: '/proc/petrel' },
      /^f: data_dir: must not lie under \/proc or \/sys$/,
    ],
    [
      'a log_dir under /sys',
      { log_dir: '/sys/petrel/logs' },
      /^f: log_dir: must not lie under \/proc or \/sys$/,
    ],
    [
      'a zero header size',
      { submission: { max_header_size: '0KB' } },
      /^f: submission\.max_header_size: must be more than 0$/,
    ],
    [
      'a zero idle timeout',
      { submission: { idle_timeout: '0s' } },
      /^f: submission\.idle_timeout: must be more than 0$/,
    ],
    [
      'a duration that rounds to zero',
      { submission: { data_timeout: '0.0001s' } },
      /^f: submission\.data_timeout: must be more than 0$/,
    ],
    [
      'a zero sweep interval (a busy loop)',
      { retention: { interval: '0m' } },
      /^f: retention\.interval: must be more than 0$/,
    ],
    [
      'a zero queue poll interval',
      { delivery: { poll_interval: '0s' } },
      /^f: delivery\.poll_interval: must be more than 0$/,
    ],
    [
      'a zero retry delay',
      { delivery: { default: { retry: ['1m', '0s'] } } },
      /^f: delivery\.default\.retry\[1\]: must be more than 0$/,
    ],
    [
      'a zero max_age (everything expires)',
      { delivery: { domain: { 'a.org': { max_age: '0d' } } } },
      /max_age: must be more than 0$/,
    ],
    [
      'a zero unsubscribe link lifetime',
      { http: { unsubscribe_ttl: '0d' } },
      /^f: http\.unsubscribe_ttl: must be more than 0$/,
    ],
    [
      'a zero VERP lifetime (every bounce refused)',
      { inbound: { verp_max_age: '0s' } },
      /^f: inbound\.verp_max_age: must be more than 0$/,
    ],
    ['a zero log file size', { log_max_size: 0 }, /^f: log_max_size: must be more than 0$/],
    ['an empty hostname', { hostname: '' }, /^f: hostname: must be a host name/],
    ['a hostname with a space', { hostname: 'mta example.com' }, /^f: hostname: must be a host name/],
    [
      'an empty bounce domain',
      { inbound: { bounce_domain: '' } },
      /^f: inbound\.bounce_domain: must be a domain name/,
    ],
    [
      'an FBL address that is no address',
      { inbound: { fbl_address: 'fbl' } },
      /^f: inbound\.fbl_address: must be an address/,
    ],
    [
      'an also_sign_as that is no domain',
      { dkim: { also_sign_as: 'not a domain' } },
      /^f: dkim\.also_sign_as: /,
    ],
    [
      'a resolver that is no IP address',
      { dns: { servers: ['dns.example'] } },
      /^f: dns\.servers\[0\]: must be an IP address/,
    ],
    [
      'a metrics token written in the config',
      { http: { metrics_token: 'x' } },
      /^f: http\.metrics_token: secrets are not written in the config: .*metrics_token_file$/,
    ],
    [
      'a zero webhook poll interval',
      { webhooks: [{ url: 'http://127.0.0.1:1/h', secret_file: '/s', poll_interval: '0s' }] },
      /^f: webhooks\[0\]\.poll_interval: must be more than 0$/,
    ],
    [
      'a zero delay warning (off is "")',
      { delivery: { delay_warning: '0s' } },
      /^f: delivery\.delay_warning: "0s" is not a duration \(like "4h"\) or "" \(off\)$/,
    ],
  ])('%s', (_what, raw, pattern) => {
    expect(() => parseConfig(raw, 'f')).toThrow(pattern);
  });

  it('accepts the values next to those limits', () => {
    const c = parseConfig(
      {
        hostname: 'vm',
        submission: {
          max_recipients: 100,
          max_message_size: 1,
          trusted_networks: ['10.0.0.0/8'],
          trusted_account: 'apps',
          close_timeout: '0s',
        },
        delivery: { drain_timeout: '0s' },
        retention: { bodies: '0s' },
        dns: { servers: ['127.0.0.1', '127.0.0.1:5353', '[::1]:53', '::1'] },
        dkim: { also_sign_as: 'platform.example' },
        data_dir: './procfs',
        http: { metrics_token_file: '/etc/petrel/metrics-token' },
      },
      'f',
    );
    expect(c.submission.max_recipients).toBe(100);
    expect(c.submission.close_timeout).toBe(0);
    expect(c.http.metrics_token_file).toBe('/etc/petrel/metrics-token');
  });

  it('warns of delays after 4h by default, after a set time, or never with ""', () => {
    expect(parseConfig({}, 'f').delivery.delay_warning).toBe(4 * 3_600_000);
    expect(parseConfig({ delivery: { delay_warning: '30m' } }, 'f').delivery.delay_warning).toBe(1_800_000);
    expect(parseConfig({ delivery: { delay_warning: '' } }, 'f').delivery.delay_warning).toBeNull();
  });
});
