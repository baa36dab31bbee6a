import { createServer } from 'node:net';
import type { Config, ListenAddress } from '../config/index.js';
import { result, type CheckResult } from './types.js';

/** Binds an address for a moment; resolves null when it could, else the error code (EADDRINUSE…). */
export type BindProbe = (address: ListenAddress) => Promise<string | null>;

export const probeBind: BindProbe = (address) =>
  new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => {
      server.close(() => resolve(null));
    });
  });

/** Every configured listener with the config key that names it. */
export function listenersOf(config: Config): { key: string; address: ListenAddress }[] {
  return [
    ...config.submission.listen.map((address) => ({ key: 'submission.listen', address })),
    ...config.submission.tls_listen.map((address) => ({ key: 'submission.tls_listen', address })),
    ...config.inbound.listen.map((address) => ({ key: 'inbound.listen', address })),
    { key: 'http.listen', address: config.http.listen },
  ];
}

function show(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * Tries each listen address. In use is a warning (a running Petrel holds its own ports); an
 * address this host does not have, or a low port without the capability, fails.
 */
export async function checkListeners(config: Config, probe: BindProbe = probeBind): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const { key, address } of listenersOf(config)) {
    const subject = show(address);
    const code = await probe(address);
    if (code === null) {
      out.push(result('listener', 'ok', subject, `${key} ${subject} can be bound`));
    } else if (code === 'EADDRINUSE') {
      out.push(
        result(
          'listener',
          'warn',
          subject,
          `${key} ${subject} is in use`,
          'fine if Petrel is running; otherwise stop the program holding the port (ss -ltnp) or change ' +
            key,
        ),
      );
    } else if (code === 'EACCES' || code === 'EPERM') {
      out.push(
        result(
          'listener',
          'fail',
          subject,
          `${key} ${subject}: no permission to bind port ${address.port}`,
          'ports below 1024 need CAP_NET_BIND_SERVICE: run under systemd/petrel.service (AmbientCapabilities) or setcap it on node',
        ),
      );
    } else if (code === 'EADDRNOTAVAIL') {
      out.push(
        result(
          'listener',
          'fail',
          subject,
          `${key} ${subject}: ${address.host} is not an address of this host`,
          `set ${key} to an address this host has (ip -br addr), or 0.0.0.0 / [::] for all`,
        ),
      );
    } else {
      out.push(
        result('listener', 'fail', subject, `${key} ${subject} cannot be bound: ${code}`, `check ${key}`),
      );
    }
  }
  return out;
}
