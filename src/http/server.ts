import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ListenAddress } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import { PetrelError, secretsEqual } from '../shared/index.js';
import type { Spool } from '../spool/index.js';
import { handleUnsubscribe } from './unsubscribe.js';

export interface HttpDeps {
  readonly listen: ListenAddress;
  readonly spool: Spool;
  readonly logger: Logger;
  /** Prometheus text exposition; null when metrics are not wired. */
  readonly metrics: (() => Promise<{ contentType: string; body: string }>) | null;
  /** Bearer token /metrics requires, '' for none; read per request, so that a reload applies at once. */
  readonly metricsToken: () => string;
  /** True when Petrel can take mail: listeners up and the database writable. */
  readonly ready: () => Promise<boolean>;
  readonly onUnsubscribe?: () => void;
  /** The HTTP API under /api/v1/. */
  readonly api?: { handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> };
}

export interface HttpService {
  start(): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

/** One listener for /metrics, /healthz, /readyz and the List-Unsubscribe endpoint. */
export function createHttpService(deps: HttpDeps): HttpService {
  const { logger } = deps;
  let server: Server | null = null;

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://petrel');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (url.pathname === '/readyz') {
      const ok = await deps.ready().catch(() => false);
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
      return;
    }
    if (url.pathname === '/metrics' && deps.metrics) {
      const token = deps.metricsToken();
      if (token && !secretsEqual(req.headers.authorization ?? '', `Bearer ${token}`)) {
        res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
        return;
      }
      const { contentType, body } = await deps.metrics();
      res.writeHead(200, { 'content-type': contentType }).end(body);
      return;
    }
    const unsub = /^\/u\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname);
    if (unsub) {
      await handleUnsubscribe(req, res, unsub[1]!, deps.spool, logger, deps.onUnsubscribe);
      return;
    }
    if (deps.api && (await deps.api.handle(req, res))) return;
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  };

  return {
    start() {
      return new Promise((resolve, reject) => {
        const s = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
          route(req, res).catch((err: unknown) => {
            logger.error({ err, path: req.url?.split('?')[0] }, 'http request failed');
            if (!res.headersSent) res.writeHead(500).end();
          });
        });
        s.once('error', (err) =>
          reject(
            new PetrelError(
              'PETREL_LISTEN_FAILED',
              `http: cannot listen on ${deps.listen.host}:${deps.listen.port}: ${err.message}`,
            ),
          ),
        );
        s.listen(deps.listen.port, deps.listen.host, () => {
          server = s;
          const addr = s.address();
          resolve({
            host: deps.listen.host,
            port: typeof addr === 'object' && addr ? addr.port : deps.listen.port,
          });
        });
      });
    },
    async close() {
      const s = server;
      server = null;
      if (!s) return;
      s.closeIdleConnections();
      await new Promise<void>((r) => s.close(() => r()));
    },
  };
}
