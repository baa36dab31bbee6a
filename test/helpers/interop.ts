import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createSocket } from 'node:dgram';

/**
 * Interop tests need Debian packages (.ci/run installs them). Where a tool is missing they skip
 * with the reason, unless PETREL_REQUIRE_INTEROP=1 (CI), where a missing tool is a failure.
 */
export function interopTool(path: string, pkg: string): { available: boolean; reason: string } {
  const available = existsSync(path);
  if (!available && process.env['PETREL_REQUIRE_INTEROP'] === '1') {
    throw new Error(`${path} is missing: apt-get install ${pkg}`);
  }
  return { available, reason: `${path} not installed (apt-get install ${pkg})` };
}

async function freeUdpPort(): Promise<number> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const { port } = sock.address();
  await new Promise<void>((r) => sock.close(() => r()));
  return port;
}

export interface Dnsmasq {
  readonly server: string;
  stop(): Promise<void>;
}

/**
 * Debian's dnsmasq as an authoritative server for the test zone on a loopback port, with no
 * upstream: names it does not know under `localZone` get NXDOMAIN.
 */
export async function startDnsmasq(args: string[], localZone = 'test'): Promise<Dnsmasq> {
  // The port is free for UDP when probed, but dnsmasq binds TCP on it too and another test may
  // take either in between: a bind failure tries a new port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDnsmasqOn(await freeUdpPort(), args, localZone);
    } catch (err) {
      if (attempt >= 5 || !/Address (already )?in use/i.test(String(err))) throw err;
    }
  }
}

async function startDnsmasqOn(port: number, args: string[], localZone: string): Promise<Dnsmasq> {
  const child: ChildProcess = spawn(
    '/usr/sbin/dnsmasq',
    [
      '--keep-in-foreground',
      '--no-daemon',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      '--bind-interfaces',
      '--listen-address=127.0.0.1',
      `--port=${port}`,
      '--user=root',
      `--local=/${localZone}/`,
      '--log-facility=-',
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  // dnsmasq has no readiness signal; answer a query before handing it over.
  const deadline = Date.now() + 5000;
  const { Resolver } = await import('node:dns/promises');
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dnsmasq exited: ${stderr}`);
    const r = new Resolver({ timeout: 200, tries: 1 });
    r.setServers([`127.0.0.1:${port}`]);
    const ok = await r.resolve4(`ready-probe.${localZone}`).then(
      () => true,
      (e: { code?: string }) => e.code === 'ENOTFOUND' || e.code === 'ENODATA',
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`dnsmasq did not answer: ${stderr}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    server: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}

/** One read or write of smtp-sink on a client connection, as strace saw it. */
export interface SinkIo {
  readonly op: 'read' | 'write';
  readonly data: string;
}

export interface TracedSmtpSink {
  readonly port: number;
  /** Every read and write on accepted connections so far, in order. */
  io(): SinkIo[];
  stop(): Promise<void>;
}

/** Undoes strace's C-style string escapes. */
function unescapeStrace(text: string): string {
  return text.replace(/\\(x[0-9a-f]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e.startsWith('x')) return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return ({ r: '\r', n: '\n', t: '\t', v: '\v', f: '\f' } as Record<string, string>)[e] ?? e;
  });
}

/**
 * Postfix's smtp-sink under strace, so a test sees each read() it made: which bytes arrived
 * together. The port is probed free and then given to smtp-sink (a race another test may win:
 * the caller retries on a bind failure, as for dnsmasq).
 */
export async function startTracedSmtpSink(port: number, sinkArgs: string[]): Promise<TracedSmtpSink> {
  const { mkdtempSync, readFileSync, rmSync, existsSync: exists } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { connect } = await import('node:net');
  const dir = mkdtempSync(join(tmpdir(), 'petrel-traced-sink-'));
  const trace = join(dir, 'trace');
  const child = spawn(
    '/usr/bin/strace',
    [
      '-qq',
      '-e',
      'trace=accept,accept4,read,write',
      '-e',
      'signal=none',
      '-s',
      '65536',
      '-o',
      trace,
      '/usr/sbin/smtp-sink',
      '-u',
      'nobody',
      ...sinkArgs,
      `127.0.0.1:${port}`,
      '16',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`smtp-sink exited: ${stderr}`);
    // A probe only connects and leaves before the banner, so it adds no read with data.
    const up = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), res(true)));
      s.on('error', () => res(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`smtp-sink did not listen: ${stderr}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    port,
    io() {
      if (!exists(trace)) return [];
      const fds = new Set<string>();
      const out: SinkIo[] = [];
      for (const line of readFileSync(trace, 'latin1').split('\n')) {
        const accepted = /^accept4?\(\d+,.*\)\s+=\s+(\d+)/.exec(line);
        if (accepted) fds.add(accepted[1]!);
        const io = /^(read|write)\((\d+), "((?:[^"\\]|\\.)*)"(?:\.\.\.)?, \d+\)\s+=\s+[1-9]/.exec(line);
        if (io && fds.has(io[2]!)) out.push({ op: io[1] as 'read' | 'write', data: unescapeStrace(io[3]!) });
      }
      return out;
    },
    stop: () =>
      new Promise<void>((res) => {
        const done = (): void => {
          rmSync(dir, { recursive: true, force: true });
          res();
        };
        if (child.exitCode !== null) return done();
        child.once('exit', done);
        // strace passes no signal on to its tracee and leaves it running when it dies itself:
        // end smtp-sink, and strace exits with it.
        const pid = child.pid!;
        const tracees = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
        for (const tracee of tracees) if (tracee) process.kill(Number(tracee), 'SIGTERM');
      }),
  };
}
