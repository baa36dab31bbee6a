import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMxResolver, openSession, type Resolution } from '../../src/delivery/index.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { startSink, type Sink } from '../helpers/sink.js';

let dns: TestDnsServer;
let sink: Sink;

beforeAll(async () => {
  dns = await startDnsServer({
    'example.test': {
      mx: [
        { preference: 20, exchange: 'mx-b.example.test' },
        { preference: 10, exchange: 'mx-a.example.test' },
        { preference: 20, exchange: 'mx-c.example.test' },
      ],
    },
    'mx-a.example.test': { a: ['127.0.0.1'] },
    'mx-b.example.test': { a: ['127.0.0.2'] },
    'mx-c.example.test': { a: ['127.0.0.3'], aaaa: ['::1'] },
    'implicit.test': { a: ['127.0.0.4'] },
    'nullmx.test': { mx: [{ preference: 0, exchange: '.' }] },
    'nomail.test': {},
    'servfail.test': { rcode: 'SERVFAIL' },
    'slow.test': { drop: true },
    'sink.test': { mx: [{ preference: 10, exchange: 'mx.sink.test' }] },
    'mx.sink.test': { a: ['127.0.0.1'] },
    'route-host.test': { a: ['127.0.0.1'] },
  });
  sink = await startSink();
});

afterAll(async () => {
  await dns.close();
  await sink.close();
});

function resolver(extra: Parameters<typeof createMxResolver>[0] = {}) {
  return createMxResolver({ servers: [dns.server], timeoutMs: 2_000, ...extra });
}

function names(r: Resolution): string[] {
  if (!r.ok) throw new Error(JSON.stringify(r.outcome));
  return r.hosts.map((h) => `${h.preference} ${h.name} ${h.address}`);
}

describe('MX resolution through a real DNS server', () => {
  it('orders MX hosts by preference and resolves each through the configured server', async () => {
    const result = names(await resolver().resolve('example.test'));
    expect(result[0]).toBe('10 mx-a.example.test 127.0.0.1');
    expect(result.slice(1).sort()).toEqual([
      '20 mx-b.example.test 127.0.0.2',
      '20 mx-c.example.test 127.0.0.3',
      '20 mx-c.example.test ::1',
    ]);
    const c = result.filter((r) => r.includes('mx-c'));
    expect(c).toEqual(['20 mx-c.example.test 127.0.0.3', '20 mx-c.example.test ::1']);
  });

  it('shuffles equal preferences between lookups', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) {
      const r = await resolver().resolve('example.test');
      if (r.ok) seen.add(r.hosts[1]!.name);
    }
    expect(seen).toEqual(new Set(['mx-b.example.test', 'mx-c.example.test']));
  });

  it('falls back to the domain’s own address when it has no MX (implicit MX)', async () => {
    expect(names(await resolver().resolve('implicit.test'))).toEqual(['0 implicit.test 127.0.0.4']);
  });

  it('fails permanently for a null MX', async () => {
    expect(await resolver().resolve('nullmx.test')).toMatchObject({
      ok: false,
      outcome: { kind: 'failed', reply: { code: 556, enhanced: '5.1.10' } },
    });
  });

  it('fails permanently for NXDOMAIN and for a domain with neither MX nor address', async () => {
    expect(await resolver().resolve('missing.test')).toMatchObject({
      ok: false,
      outcome: { kind: 'failed', reply: { enhanced: '5.1.2' } },
    });
    expect(await resolver().resolve('nomail.test')).toMatchObject({
      ok: false,
      outcome: { kind: 'failed', reply: { enhanced: '5.1.2' } },
    });
  });

  it('defers on SERVFAIL', async () => {
    expect(await resolver().resolve('servfail.test')).toMatchObject({
      ok: false,
      outcome: { kind: 'deferred', reply: { code: 451, enhanced: '4.4.3' } },
    });
  });

  it('defers when the server does not answer, within the timeout', async () => {
    const started = Date.now();
    const r = await resolver({ timeoutMs: 500 }).resolve('slow.test');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(r).toMatchObject({ ok: false, outcome: { kind: 'deferred', reply: { enhanced: '4.4.3' } } });
  });

  it('uses a static route without asking DNS for MX, resolving the route host by name', async () => {
    const before = dns.queries.length;
    const r = await resolver({ routes: { 'routed.test': { host: 'route-host.test', port: 2526 } } }).resolve(
      'routed.test',
    );
    expect(names(r)).toEqual(['0 route-host.test 127.0.0.1']);
    expect(dns.queries.slice(before).some((q) => q.type === 'MX')).toBe(false);
  });

  it('delivers end to end: DNS MX lookup, then the session to the MX', async () => {
    const resolved = await resolver({ port: sink.port }).resolve('sink.test');
    if (!resolved.ok) throw new Error('sink.test did not resolve');
    const opened = await openSession(resolved.hosts, {
      hostname: 'mta.petrel.test',
      tls: 'may',
      timeouts: { connectMs: 2_000, greetingMs: 2_000 },
    });
    if (!opened.ok) throw new Error('no session to sink.test');
    const outcomes = await opened.session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@sink.test'],
      message: Buffer.from('Subject: e2e\r\n\r\nhi\r\n'),
    });
    await opened.session.close();
    expect(outcomes).toMatchObject([{ kind: 'delivered', mx: 'mx.sink.test' }]);
    expect((await sink.waitForMessages(1))[0]!.rcptTo).toEqual(['x@sink.test']);
  });
});
