import { describe, expect, it } from 'vitest';
import {
  createMxResolver,
  createStaticResolver,
  orderMx,
  type DnsClient,
  type Resolution,
} from '../../../src/delivery/index.js';

interface FakeZone {
  mx?: Record<string, { exchange: string; priority: number }[] | string>;
  a?: Record<string, string[] | string>;
  aaaa?: Record<string, string[] | string>;
}

/** A DnsClient answering from tables; a string value is the error code to fail with. */
function fakeDns(zone: FakeZone, calls: string[] = []): () => DnsClient {
  const answer = <T>(
    table: Record<string, T[] | string> | undefined,
    name: string,
    type: string,
  ): Promise<T[]> => {
    calls.push(`${type} ${name}`);
    const value = table?.[name];
    if (value === 'HANG') return new Promise<T[]>(() => undefined);
    if (typeof value === 'string') return Promise.reject(Object.assign(new Error(value), { code: value }));
    if (value === undefined) return Promise.reject(Object.assign(new Error('ENODATA'), { code: 'ENODATA' }));
    return Promise.resolve(value);
  };
  return () => ({
    resolveMx: (name) => answer(zone.mx, name, 'MX'),
    resolve4: (name) => answer(zone.a, name, 'A'),
    resolve6: (name) => answer(zone.aaaa, name, 'AAAA'),
    cancel: () => undefined,
  });
}

function hostsOf(r: Resolution): string[] {
  if (!r.ok) throw new Error(`expected hosts, got ${JSON.stringify(r.outcome)}`);
  return r.hosts.map((h) => `${h.name}/${h.address}:${h.port}`);
}

describe('createMxResolver', () => {
  it('returns MX hosts in preference order with their addresses, IPv4 first', async () => {
    const resolver = createMxResolver({
      dnsFactory: fakeDns({
        mx: {
          'example.com': [
            { exchange: 'mx2.example.com', priority: 20 },
            { exchange: 'mx1.example.com', priority: 10 },
          ],
        },
        a: { 'mx1.example.com': ['192.0.2.1'], 'mx2.example.com': ['192.0.2.2'] },
        aaaa: { 'mx1.example.com': ['2001:db8::1'] },
      }),
    });
    expect(hostsOf(await resolver.resolve('Example.COM'))).toEqual([
      'mx1.example.com/192.0.2.1:25',
      'mx1.example.com/2001:db8::1:25',
      'mx2.example.com/192.0.2.2:25',
    ]);
  });

  it('shuffles MX hosts of equal preference', () => {
    const records = [
      { exchange: 'a.example', priority: 10 },
      { exchange: 'b.example', priority: 10 },
      { exchange: 'c.example', priority: 5 },
    ];
    expect(orderMx(records, () => 0).map((m) => m.name)).toEqual(['c.example', 'b.example', 'a.example']);
    expect(orderMx(records, () => 0.99).map((m) => m.name)).toEqual(['c.example', 'a.example', 'b.example']);
  });

  it('uses the domain itself (implicit MX) when it has no MX record', async () => {
    const resolver = createMxResolver({
      port: 2525,
      dnsFactory: fakeDns({ a: { 'example.org': ['192.0.2.9'] } }),
    });
    expect(hostsOf(await resolver.resolve('example.org'))).toEqual(['example.org/192.0.2.9:2525']);
  });

  it('fails permanently with 5.1.10 for a null MX', async () => {
    const resolver = createMxResolver({
      dnsFactory: fakeDns({ mx: { 'example.net': [{ exchange: '', priority: 0 }] } }),
    });
    const r = await resolver.resolve('example.net');
    expect(r).toMatchObject({
      ok: false,
      outcome: { kind: 'failed', reply: { code: 556, enhanced: '5.1.10' } },
    });
  });

  it('fails permanently with 5.1.2 for NXDOMAIN', async () => {
    const resolver = createMxResolver({ dnsFactory: fakeDns({ mx: { 'nope.example': 'ENOTFOUND' } }) });
    const r = await resolver.resolve('nope.example');
    expect(r).toMatchObject({
      ok: false,
      outcome: { kind: 'failed', reply: { enhanced: '5.1.2' }, mx: null },
    });
  });

  it('fails permanently when there is neither MX nor address', async () => {
    const resolver = createMxResolver({ dnsFactory: fakeDns({}) });
    const r = await resolver.resolve('empty.example');
    expect(r).toMatchObject({ ok: false, outcome: { kind: 'failed', reply: { enhanced: '5.1.2' } } });
  });

  it('defers with 4.4.3 on SERVFAIL', async () => {
    const resolver = createMxResolver({ dnsFactory: fakeDns({ mx: { 'broken.example': 'ESERVFAIL' } }) });
    const r = await resolver.resolve('broken.example');
    expect(r).toMatchObject({
      ok: false,
      outcome: { kind: 'deferred', reply: { code: 451, enhanced: '4.4.3' } },
    });
  });

  it('defers with 4.4.3 when the lookup passes its deadline', async () => {
    const resolver = createMxResolver({
      timeoutMs: 50,
      dnsFactory: fakeDns({ mx: { 'slow.example': 'HANG' } }),
    });
    const started = Date.now();
    const r = await resolver.resolve('slow.example');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(r).toMatchObject({ ok: false, outcome: { kind: 'deferred', reply: { enhanced: '4.4.3' } } });
  });

  it('skips MX hosts without an address and keeps the others', async () => {
    const resolver = createMxResolver({
      dnsFactory: fakeDns({
        mx: {
          'example.com': [
            { exchange: 'gone.example.com', priority: 1 },
            { exchange: 'mx.example.com', priority: 2 },
          ],
        },
        a: { 'gone.example.com': 'ENOTFOUND', 'mx.example.com': ['192.0.2.3'] },
        aaaa: { 'gone.example.com': 'ENOTFOUND' },
      }),
    });
    expect(hostsOf(await resolver.resolve('example.com'))).toEqual(['mx.example.com/192.0.2.3:25']);
  });

  it('fails with 5.4.4 when no MX host has an address, and defers when one lookup was transient', async () => {
    const zone: FakeZone = {
      mx: {
        'example.com': [
          { exchange: 'a.example.com', priority: 1 },
          { exchange: 'b.example.com', priority: 2 },
        ],
      },
      a: { 'a.example.com': 'ENOTFOUND', 'b.example.com': 'ENOTFOUND' },
    };
    const permanent = await createMxResolver({ dnsFactory: fakeDns(zone) }).resolve('example.com');
    expect(permanent).toMatchObject({ ok: false, outcome: { kind: 'failed', reply: { enhanced: '5.4.4' } } });
    zone.a!['b.example.com'] = 'ETIMEOUT';
    const transient = await createMxResolver({ dnsFactory: fakeDns(zone) }).resolve('example.com');
    expect(transient).toMatchObject({
      ok: false,
      outcome: { kind: 'deferred', reply: { enhanced: '4.4.3' } },
    });
  });

  it('sends a domain with a static route to its host without an MX lookup', async () => {
    const calls: string[] = [];
    const resolver = createMxResolver({
      routes: { 'example.net': { host: '127.0.0.1', port: 2526 } },
      dnsFactory: fakeDns({}, calls),
    });
    expect(hostsOf(await resolver.resolve('example.net'))).toEqual(['127.0.0.1/127.0.0.1:2526']);
    expect(calls).toEqual([]);
  });

  it('rejects a destination that is not a host name', async () => {
    const r = await createMxResolver({ dnsFactory: fakeDns({}) }).resolve('[127.0.0.1]');
    expect(r).toMatchObject({ ok: false, outcome: { kind: 'failed', reply: { enhanced: '5.1.2' } } });
  });
});

describe('createStaticResolver', () => {
  it('maps domains to fixed hosts and fails unknown domains like NXDOMAIN', async () => {
    const resolver = createStaticResolver({ 'example.test': { host: '127.0.0.1', port: 2500 } });
    expect(hostsOf(await resolver.resolve('EXAMPLE.test'))).toEqual(['127.0.0.1/127.0.0.1:2500']);
    expect(await resolver.resolve('other.test')).toMatchObject({ ok: false, outcome: { kind: 'failed' } });
  });
});
