import type { IncomingMessage } from 'node:http';
import { ipInCidrs, parseCidr, type Cidr } from '../config/index.js';
import type { SharedCounters } from '../shared/index.js';
import { problem } from './problem.js';

export type ApiScope = 'send' | 'read' | 'admin' | 'content';

/** What a request is allowed, from its key. */
export interface ApiCaller {
  readonly keyId: string;
  /** null: an operator key, which acts for any account. */
  readonly accountId: number | null;
  readonly scopes: readonly ApiScope[];
}

/** The key store as the API needs it (the spool's ApiKeyStore). */
export interface KeyVerifier {
  verify(
    token: string,
    now: number,
  ): Promise<{
    readonly id: string;
    readonly accountId: number | null;
    readonly scopes: readonly ApiScope[];
    readonly networks: readonly string[];
  } | null>;
  touch(id: string, at: number): Promise<void>;
}

/** Failed authentications from one address within a minute before it is refused outright. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 60_000;

const cidrCache = new Map<string, Cidr[]>();
function cidrsOf(networks: readonly string[]): Cidr[] {
  const key = networks.join(',');
  let list = cidrCache.get(key);
  if (!list) {
    list = networks.map(parseCidr).filter((c): c is Cidr => c !== null);
    if (cidrCache.size > 1000) cidrCache.clear();
    cidrCache.set(key, list);
  }
  return list;
}

/** The client's address without the IPv4-mapped prefix. */
export const clientAddress = (req: IncomingMessage): string =>
  (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');

/**
 * The caller of a request, from its Bearer key; throws a 401 problem otherwise. Failures count
 * per client address as SMTP AUTH failures do, shared by the node's workers (and nodes).
 */
export async function authenticate(
  req: IncomingMessage,
  keys: KeyVerifier,
  counters: SharedCounters,
  now: number,
): Promise<ApiCaller> {
  const ip = clientAddress(req);
  const failures = `api-auth:${ip}`;
  if ((await counters.count(failures)) >= MAX_FAILURES)
    throw problem(
      429,
      'Too many failed authentications',
      'Wait a minute before trying again.',
      {},
      { 'retry-after': '60' },
    );
  const header = req.headers.authorization ?? '';
  const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/.exec(header);
  const key = m ? await keys.verify(m[1]!, now) : null;
  if (!key || (key.networks.length > 0 && !ipInCidrs(ip, cidrsOf(key.networks)))) {
    await counters.hit(failures, FAILURE_WINDOW_MS);
    throw problem(
      401,
      'Unauthorized',
      m
        ? 'The API key is unknown, revoked, expired, or not allowed from this address.'
        : 'Send an API key: Authorization: Bearer <key>.',
      {},
      { 'www-authenticate': 'Bearer realm="petrel"' },
    );
  }
  void keys.touch(key.id, now).catch(() => undefined);
  return { keyId: key.id, accountId: key.accountId, scopes: key.scopes };
}

/** Throws 403 unless the caller has `scope` (an operator key has every scope). */
export function requireScope(caller: ApiCaller, scope: ApiScope): void {
  if (caller.scopes.includes(scope) || caller.scopes.includes('admin')) return;
  throw problem(403, 'Forbidden', `This key lacks the "${scope}" scope.`);
}
