import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';

// RELIABILITY.md case 48: testssl.sh (Debian's testssl.sh package, command `testssl`) against the
// STARTTLS submission port, the implicit-TLS port and the inbound port. The daemon serves a leaf signed by a CA made
// here, which testssl is given with --add-ca, so "chain of trust" can pass as it would in production.

/** One finding of testssl's flat JSON output. */
interface Finding {
  readonly id: string;
  readonly severity: string;
  readonly finding: string;
}

const RUN_TIMEOUT_MS = 90_000;

let t: TestDir;
let daemon: Daemon;

/** A CA and a leaf for petrel.test and 127.0.0.1 signed by it, made with openssl in `dir`. */
function makeCa(dir: string): { ca: string; cert: string; key: string } {
  const p = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'pipe' });
  };
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '30',
    '-subj',
    '/CN=Petrel Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    p('ca-key.pem'),
    '-out',
    p('ca.pem'),
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=petrel.test',
    '-keyout',
    p('key.pem'),
    '-out',
    p('leaf.csr'),
  );
  writeFileSync(
    p('leaf.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' +
      'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:petrel.test,IP:127.0.0.1\n',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    p('leaf.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca-key.pem'),
    '-CAcreateserial',
    '-days',
    '30',
    '-sha256',
    '-extfile',
    p('leaf.ext'),
    '-out',
    p('cert.pem'),
  );
  return { ca: p('ca.pem'), cert: p('cert.pem'), key: p('key.pem') };
}

/**
 * Runs testssl on 127.0.0.1:`port` and returns its findings. --nodns none and an IP literal keep
 * every packet on loopback (no DNS, no CRL or OCSP fetches without --phone-out); -p, -s and -S
 * are the protocol, cipher-category and certificate checks, and nothing else is run.
 */
function testssl(port: number, ca: string, starttls: boolean): Promise<Finding[]> {
  const json = join(t.dir, `testssl-${port}.json`);
  const args = [
    '--quiet',
    '--color',
    '0',
    '--nodns',
    'none',
    '--warnings',
    'off',
    '--connect-timeout',
    '5',
    '--openssl-timeout',
    '5',
    '--add-ca',
    ca,
    '--jsonfile',
    json,
    '--protocols',
    '--std',
    '--server-defaults',
    ...(starttls ? ['--starttls', 'smtp'] : []),
    `127.0.0.1:${port}`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('testssl', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: RUN_TIMEOUT_MS });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (signal) return reject(new Error(`testssl stopped by ${signal}:\n${out}`));
      try {
        resolve(JSON.parse(readFileSync(json, 'utf8')) as Finding[]);
      } catch (err) {
        reject(new Error(`testssl exited ${code} without its JSON: ${String(err)}\n${out}`));
      }
    });
  });
}

function finding(findings: readonly Finding[], id: string): Finding {
  const f = findings.find((x) => x.id === id);
  if (!f) throw new Error(`testssl reported no ${id}: ${findings.map((x) => x.id).join(' ')}`);
  return f;
}

function expectSound(findings: readonly Finding[]): void {
  for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) {
    expect(finding(findings, id).finding, id).toMatch(/^not offered/);
  }
  expect(finding(findings, 'TLS1_2').finding).toMatch(/^offered/);
  // LOW is 64-bit, DES and RC2/RC4; aNULL the anonymous suites.
  for (const id of ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT', 'cipherlist_LOW']) {
    expect(finding(findings, id).finding, id).toMatch(/^not offered/);
  }
  expect(finding(findings, 'cert_chain_of_trust').finding).toMatch(/^passed/);
  expect(finding(findings, 'cert_trust').severity).toBe('OK');
  expect(findings.filter((f) => f.severity === 'FATAL')).toEqual([]);
}

beforeAll(async () => {
  // No pause before the inbound banner: it only slows testssl's hundreds of connections.
  t = makeTestDir('[inbound]\nlisten = ["127.0.0.1:0"]\ngreeting_pause = "0s"\n');
  const { cert, key } = makeCa(t.dir);
  writeFileSync(
    t.configPath,
    `${readFileSync(t.configPath, 'utf8')}\n[tls]\ncert = "${cert}"\nkey = "${key}"\n`,
  );
  daemon = await startDaemon(t);
});

afterAll(async () => {
  await daemon?.stop();
  t?.cleanup();
});

describe('case 48: testssl.sh finds no weak protocol or cipher, and a valid chain', () => {
  it(
    'on the STARTTLS submission port',
    async () => {
      const started = performance.now();
      const findings = await testssl(daemon.ports.submission, join(t.dir, 'ca.pem'), true);
      console.log(`testssl --starttls smtp: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      expect(finding(findings, 'service').finding).toBe('smtp');
      expectSound(findings);
    },
    RUN_TIMEOUT_MS + 10_000,
  );

  it(
    'on the implicit-TLS submission port',
    async () => {
      const started = performance.now();
      const findings = await testssl(daemon.ports.submissions!, join(t.dir, 'ca.pem'), false);
      console.log(`testssl (implicit TLS): ${((performance.now() - started) / 1000).toFixed(1)} s`);
      expectSound(findings);
    },
    RUN_TIMEOUT_MS + 10_000,
  );

  it(
    'on the STARTTLS inbound port, the public one',
    async () => {
      const started = performance.now();
      const findings = await testssl(daemon.ports.inbound!, join(t.dir, 'ca.pem'), true);
      console.log(`testssl --starttls smtp, inbound: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      expect(finding(findings, 'service').finding).toBe('smtp');
      expectSound(findings);
    },
    RUN_TIMEOUT_MS + 10_000,
  );
});
