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
