import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createDoctorDns, runDoctor, type CheckResult } from '../../src/doctor/index.js';
import { BIN } from '../helpers/daemon.js';
import { reverseName, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process's event loop, which serves the test DNS zone. */
function petrel(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function lines(run: Run): CheckResult[] {
  return run.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as CheckResult);
}

interface Site {
  dir: string;
  config: string;
  dataDir: string;
}

function makeSite(name: string, body: (dataDir: string) => string): Site {
  const dir = mkdtempSync(join(tmpdir(), `petrel-doctor-${name}-`));
  const dataDir = join(dir, 'var');
  const config = join(dir, 'petrel.toml');
  writeFileSync(config, body(dataDir));
  return { dir, config, dataDir };
}

async function dkimRecord(
  site: Site,
  domain: string,
): Promise<{ name: string; strings: string[]; value: string }> {
  const made = await petrel(['--config', site.config, 'dkim', 'keygen', domain, '--selector', 's1']);
  expect(made.status, made.stderr).toBe(0);
  const shown = await petrel(['--config', site.config, '--json', 'dkim', 'dns', domain]);
  return JSON.parse(shown.stdout) as { name: string; strings: string[]; value: string };
}

describe('petrel doctor', () => {
  let dns: TestDnsServer;
  let good: Site;
  let broken: Site;
  let held: Server;
  let heldPort: number;

  beforeAll(async () => {
    dns = await startDnsServer({});
    held = createServer();
    await new Promise<void>((res) => held.listen(0, '127.0.0.1', () => res()));
    heldPort = (held.address() as AddressInfo).port;

    const pems = await generate([{ name: 'commonName', value: 'mta.good.test' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'mta.good.test' }] }],
    });
    good = makeSite('good', (dataDir) => {
      writeFileSync(join(dataDir, '..', 'cert.pem'), pems.cert);
      writeFileSync(join(dataDir, '..', 'key.pem'), pems.private);
      return `hostname = "mta.good.test"
data_dir = ${JSON.stringify(dataDir)}
[submission]
listen = ["127.0.0.1:0"]
[tls]
cert = ${JSON.stringify(join(dataDir, '..', 'cert.pem'))}
key = ${JSON.stringify(join(dataDir, '..', 'key.pem'))}
[inbound]
listen = ["127.0.0.1:0"]
bounce_domain = "bounces.good.test"
[http]
listen = "127.0.0.1:0"
[dns]
servers = ["${dns.server}"]
`;
    });
    broken = makeSite(
      'broken',
      (dataDir) => `hostname = "mta.broken.test"
data_dir = ${JSON.stringify(dataDir)}
[submission]
listen = ["192.0.2.1:2587"]
[inbound]
listen = ["127.0.0.1:${heldPort}"]
bounce_domain = "bounces.broken.test"
[http]
listen = "127.0.0.1:0"
[dns]
servers = ["${dns.server}"]
`,
    );

    const goodKey = await dkimRecord(good, 'good.test');
    await dkimRecord(broken, 'broken.test');

    // A zone where everything is right: DKIM matches, SPF covers both addresses (through an
    // include for IPv4, through mx for IPv6), DMARC, forward-confirmed PTRs, bounce MX here.
    dns.set(goodKey.name, { txt: [goodKey.strings] });
    dns.set('good.test', {
      txt: ['google-site-verification=abc', 'v=spf1 include:_spf.good.test mx -all'],
      mx: [{ preference: 10, exchange: 'mta.good.test' }],
    });
    dns.set('_spf.good.test', { txt: ['v=spf1 ip4:192.0.2.0/24 -all'] });
    dns.set('_dmarc.good.test', { txt: ['v=DMARC1; p=reject; rua=mailto:dmarc@good.test'] });
    dns.set('mta.good.test', { a: ['192.0.2.10'], aaaa: ['2001:db8::10'] });
    dns.set(reverseName('192.0.2.10'), { ptr: ['mta.good.test'] });
    dns.set(reverseName('2001:db8::10'), { ptr: ['mta.good.test'] });
    dns.set('bounces.good.test', { mx: [{ preference: 10, exchange: 'mta.good.test' }] });

    // A zone where each check has something wrong: the DKIM record carries another key, SPF
    // lists other addresses, no DMARC, the PTR name does not point back, the bounce MX is elsewhere.
    dns.set('s1._domainkey.broken.test', { txt: [goodKey.strings] });
    dns.set('broken.test', { txt: ['v=spf1 ip4:198.51.100.0/24 -all'] });
    dns.set('mta.broken.test', { a: ['192.0.2.99'] });
    dns.set(reverseName('192.0.2.66'), { ptr: ['mta.broken.test'] });
    dns.set('bounces.broken.test', { mx: [{ preference: 10, exchange: 'mx.elsewhere.test' }] });
    dns.set('mx.elsewhere.test', { a: ['203.0.113.5'] });
  });

  afterAll(async () => {
    await dns?.close();
    await new Promise<void>((res) => held?.close(() => res()));
    for (const s of [good, broken]) if (s) rmSync(s.dir, { recursive: true, force: true });
  });

  it('passes every check against a correct zone and exits 0', async () => {
    const run = await petrel([
      '--config',
      good.config,
      '--json',
      'doctor',
      'good.test',
      '--ip',
      '192.0.2.10',
      '--ip',
      '2001:db8::10',
    ]);
    const results = lines(run);
    expect(
      results.filter((r) => r.status !== 'ok'),
      run.stdout,
    ).toEqual([]);
    expect(run.status).toBe(0);
    expect(new Set(results.map((r) => r.check))).toEqual(
      new Set(['config', 'spool', 'listener', 'dkim', 'spf', 'dmarc', 'reverse-dns', 'bounce-mx']),
    );
    expect(results.filter((r) => r.check === 'listener')).toHaveLength(3);
    expect(results.filter((r) => r.check === 'spf').map((r) => r.subject)).toEqual([
      'good.test 192.0.2.10',
      'good.test 2001:db8::10',
    ]);
    expect(results.find((r) => r.check === 'spf')?.message).toContain('SPF of good.test covers 192.0.2.10');
    expect(results.filter((r) => r.check === 'reverse-dns')).toHaveLength(2);
  });

  it('checks every domain with a DKIM key when no domain is named', async () => {
    const run = await petrel(['--config', good.config, '--json', 'doctor', '--ip', '192.0.2.10']);
    expect(run.status).toBe(0);
    expect(lines(run).find((r) => r.check === 'dkim')).toMatchObject({
      status: 'ok',
      subject: 's1._domainkey.good.test',
    });
  });

  it('fails each check of a broken zone with the fix that repairs it, and exits 1', async () => {
    const run = await petrel([
      '--config',
      broken.config,
      '--json',
      'doctor',
      'broken.test',
      '--ip',
      '192.0.2.66',
    ]);
    expect(run.status).toBe(1);
    const results = lines(run);
    const failed = (check: string): CheckResult[] =>
      results.filter((r) => r.check === check && r.status === 'fail');

    const [notHere] = failed('listener');
    expect(notHere).toMatchObject({ subject: '192.0.2.1:2587' });
    expect(notHere?.fix).toMatch(/address this host has/);
    expect(results.find((r) => r.subject === `127.0.0.1:${heldPort}`)).toMatchObject({ status: 'warn' });

    const [dkim] = failed('dkim');
    expect(dkim?.message).toMatch(/different key/);
    const ownKey = JSON.parse(
      (await petrel(['--config', broken.config, '--json', 'dkim', 'dns', 'broken.test'])).stdout,
    ) as { strings: string[] };
    expect(dkim?.fix).toContain(
      `s1._domainkey.broken.test. IN TXT ( ${ownKey.strings.map((s) => `"${s}"`).join(' ')} )`,
    );

    const [spf] = failed('spf');
    expect(spf?.message).toMatch(/does not cover 192\.0\.2\.66 \(fail/);
    expect(spf?.fix).toBe('publish: broken.test. IN TXT "v=spf1 ip4:192.0.2.66 ip4:198.51.100.0/24 -all"');

    const [dmarc] = failed('dmarc');
    expect(dmarc?.fix).toMatch(/^publish: _dmarc\.broken\.test\. IN TXT "v=DMARC1; p=none; /);

    const [ptr] = failed('reverse-dns');
    expect(ptr?.message).toBe(
      '192.0.2.66 points to mta.broken.test, which does not resolve back to 192.0.2.66',
    );
    expect(ptr?.fix).toMatch(/^publish mta\.broken\.test\. IN A 192\.0\.2\.66/);

    const [mx] = failed('bounce-mx');
    expect(mx?.message).toMatch(/is mx\.elsewhere\.test, not this host \(mta\.broken\.test\)/);
    expect(mx?.fix).toContain('bounces.broken.test. IN MX 10 mta.broken.test.');
  });

  it('prints one line per check with the fix under it for people', async () => {
    const run = await petrel(['--config', broken.config, 'doctor', 'broken.test']);
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/^fail {2}dmarc {8}no DMARC record at _dmarc\.broken\.test/m);
    expect(run.stdout).toMatch(/^ {19}fix: publish: _dmarc\.broken\.test\./m);
    // Without --ip, coverage and reverse DNS cannot be decided: warnings, not failures.
    expect(run.stdout).toMatch(/^warn {2}spf .*without --ip/m);
    expect(run.stdout).toMatch(/^warn {2}reverse-dns {2}no sending address given/m);
  });

  it('reports missing records as failures with the record to publish', async () => {
    const config = loadConfig(good.config, {}).config;
    const results = await runDoctor({
      config: {
        ...config,
        hostname: 'mta.bare.test',
        inbound: { ...config.inbound, bounce_domain: 'bounces.bare.test' },
      },
      domains: ['bare.test'],
      ips: ['192.0.2.77'],
      dkimKeys: [],
      dns: createDoctorDns([dns.server]),
    });
    const byCheck = Object.fromEntries(
      results.filter((r) => r.check !== 'listener').map((r) => [r.check, r]),
    );
    expect(byCheck['dkim']).toMatchObject({
      status: 'fail',
      fix: 'petrel dkim keygen bare.test, then publish the TXT record it prints',
    });
    expect(byCheck['spf']).toMatchObject({
      status: 'fail',
      fix: 'publish: bare.test. IN TXT "v=spf1 ip4:192.0.2.77 -all"',
    });
    expect(byCheck['dmarc']?.status).toBe('fail');
    expect(byCheck['reverse-dns']).toMatchObject({
      status: 'fail',
      message: '192.0.2.77 has no PTR record: many receivers refuse mail from it',
    });
    expect(byCheck['bounce-mx']).toMatchObject({
      status: 'fail',
      fix: 'publish: bounces.bare.test. IN MX 10 mta.bare.test. (and mta.bare.test needs an A record for this host)',
    });
  });

  it('decides records that use macros, exists and ptr as receivers do', async () => {
    dns.set('macro.test', { txt: ['v=spf1 exists:%{i}._spf.macro.test -all'] });
    dns.set('192.0.2.10._spf.macro.test', { a: ['127.0.0.2'] });
    dns.set('ptr.test', { txt: ['v=spf1 ptr:good.test -all'] });
    const config = loadConfig(good.config, {}).config;
    const results = await runDoctor({
      config,
      domains: ['macro.test', 'ptr.test'],
      ips: ['192.0.2.10', '192.0.2.11'],
      dkimKeys: [],
      dns: createDoctorDns([dns.server]),
    });
    const spf = results.filter((r) => r.check === 'spf').map((r) => [r.subject, r.status]);
    expect(spf).toEqual([
      ['macro.test 192.0.2.10', 'ok'],
      ['macro.test 192.0.2.11', 'fail'],
      ['ptr.test 192.0.2.10', 'ok'],
      ['ptr.test 192.0.2.11', 'fail'],
    ]);
  });

  it('warns instead of failing when the DNS server cannot answer', async () => {
    dns.set('flaky.test', { rcode: 'SERVFAIL' });
    dns.set('_dmarc.flaky.test', { rcode: 'SERVFAIL' });
    const config = loadConfig(good.config, {}).config;
    const results = await runDoctor({
      config,
      domains: ['flaky.test'],
      ips: ['192.0.2.10'],
      dkimKeys: [],
      dns: createDoctorDns([dns.server]),
    });
    expect(results.find((r) => r.check === 'spf')).toMatchObject({ status: 'warn' });
    expect(results.find((r) => r.check === 'dmarc')).toMatchObject({ status: 'warn' });
  });

  it('reads TXT records too long for UDP over TCP, as the real resolver does', async () => {
    const long = `v=DKIM1; k=rsa; p=${'A'.repeat(700)}`;
    dns.set('big._domainkey.good.test', { txt: [long] });
    const answer = await createDoctorDns([dns.server]).resolveTxt('big._domainkey.good.test');
    expect(answer.map((chunks) => chunks.join(''))).toEqual([long]);
    expect(
      dns.queries.filter((q) => q.name === 'big._domainkey.good.test').map((q) => q.transport),
    ).toContain('tcp');
  });

  it('stops after a config that does not validate, naming the key', async () => {
    const bad = makeSite(
      'bad',
      (dataDir) =>
        `data_dir = ${JSON.stringify(dataDir)}\n[submission]\nlisten = ["127.0.0.1:0"]\nbogus = 1\n`,
    );
    try {
      const run = await petrel(['--config', bad.config, '--json', 'doctor', 'good.test']);
      expect(run.status).toBe(1);
      const results = lines(run);
      expect(results).toHaveLength(1);
      expect(results[0]).toMatchObject({ check: 'config', status: 'fail' });
      expect(results[0]?.message).toContain('submission.bogus: unknown key');
    } finally {
      rmSync(bad.dir, { recursive: true, force: true });
    }
  });
});
