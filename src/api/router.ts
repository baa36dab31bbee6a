import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Logger } from '../logging/index.js';
import { showMessage } from '../ops/index.js';
import type { Clock, SharedCounters } from '../shared/index.js';
import type { Account, Spool } from '../spool/index.js';
import type { DirectResult, DirectSubmission } from '../submission/index.js';
import { authenticate, clientAddress, requireScope, type ApiCaller, type KeyVerifier } from './auth.js';
import { sendMessage, sendSchemaFor } from './messages.js';
import { openApiDocument } from './openapi.js';
import { problem, ProblemError, sendJson, sendProblem } from './problem.js';

export interface ApiDeps {
  readonly spool: Spool;
  readonly keys: KeyVerifier;
  /** Failed authentications per address, shared as SMTP AUTH's are. */
  readonly counters: SharedCounters;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The submission service's door for whole messages (same checks as SMTP). */
  readonly submit: (input: DirectSubmission) => Promise<DirectResult>;
  /** Largest message accepted ([submission] max_message_size); a JSON body may be a third larger. */
  readonly maxMessageSize: () => number;
  /** Petrel's version, for the OpenAPI document. */
  readonly version: string;
}

export interface Api {
  /** Answers the request if it is one of /api/v1/…; false when the path is not the API's. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

/** Reads the body up to `limit` bytes; a larger one is a 413, whatever it holds. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      reject(problem(413, 'Request too large', `The body may be at most ${limit} bytes.`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.once('end', () =>
      over
        ? reject(problem(413, 'Request too large', `The body may be at most ${limit} bytes.`))
        : resolve(Buffer.concat(chunks, size)),
    );
    req.once('error', reject);
  });
}

async function jsonBody<T>(
  req: IncomingMessage,
  limit: number,
  schemaFor: (value: unknown) => z.ZodType<T>,
): Promise<{ value: T; raw: Buffer }> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json')
    throw problem(415, 'Unsupported media type', 'Send the request as Content-Type: application/json.');
  const raw = await readBody(req, limit);
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw problem(400, 'Malformed JSON', err instanceof Error ? err.message : 'The body is not JSON.');
  }
  const parsed = schemaFor(value).safeParse(value);
  if (!parsed.success) throw problem(400, 'Invalid request', z.prettifyError(parsed.error));
  return { value: parsed.data, raw };
}

/** The Idempotency-Key header (1 to 255 visible characters), null when absent; 400 when malformed. */
function idempotencyKey(req: IncomingMessage): string | null {
  const v = req.headers['idempotency-key'];
  if (v === undefined) return null;
  if (typeof v !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(v))
    throw problem(400, 'Bad Idempotency-Key', 'Give 1 to 255 visible ASCII characters.');
  return v;
}

/** The account a caller acts as: its own, or (operator keys) the one it names. */
function accountResolver(spool: Spool, clock: Clock) {
  let byId = new Map<number, Account>();
  let readAt = -Infinity;
  const fresh = async (): Promise<Map<number, Account>> => {
    // Accounts change rarely: one read a second serves every request meanwhile.
    if (clock.now() - readAt >= 1000) {
      readAt = clock.now();
      byId = new Map((await spool.accounts.list()).map((a) => [a.id, a]));
    }
    return byId;
  };
  return async (caller: ApiCaller, named: string | undefined): Promise<Account> => {
    if (caller.accountId === null) {
      if (named === undefined)
        throw problem(422, 'No account', 'An operator key names the sending account: "account".');
      const account = await spool.accounts.get(named);
      if (!account) throw problem(422, 'No such account', `There is no account named "${named}".`);
      return account;
    }
    const own = (await fresh()).get(caller.accountId) ?? null;
    if (!own) throw problem(401, 'Unauthorized', 'The account of this key no longer exists.');
    if (named !== undefined && named !== own.name)
      throw problem(403, 'Forbidden', 'A key sends only as its own account.');
    return own;
  };
}

/** The HTTP API, /api/v1/…, every request authenticated by a Bearer key. */
export function createApi(deps: ApiDeps): Api {
  const { logger, clock } = deps;
  const account = accountResolver(deps.spool, clock);
  // The document describes the API, not any account: it is served without a key.
  const openApi = JSON.stringify(openApiDocument(deps.version));

  const route = async (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    requestId: string,
  ): Promise<void> => {
    const caller = await authenticate(req, deps.keys, deps.counters, clock.now());
    if (path === '/api/v1/messages') {
      if (req.method !== 'POST')
        throw problem(405, 'Method not allowed', 'POST a message here.', {}, { allow: 'POST' });
      requireScope(caller, 'send');
      const idemKey = idempotencyKey(req);
      const body = await jsonBody(req, Math.ceil(deps.maxMessageSize() * 1.4) + 65_536, sendSchemaFor);
      const send = () =>
        sendMessage({ submit: deps.submit, account }, caller, body.value, req, requestId, clientAddress(req));
      if (idemKey === null) {
        const out = await send();
        sendJson(res, out.status, out.body);
        return;
      }
      const hash = createHash('sha256').update(body.raw).digest('hex');
      const earlier = await deps.spool.idempotency.begin(caller.keyId, idemKey, hash, clock.now());
      if (earlier.state !== 'new' && earlier.bodyHash !== hash)
        throw problem(422, 'Idempotency key reused', 'This Idempotency-Key was used with another body.');
      if (earlier.state === 'pending')
        throw problem(
          409,
          'Request in progress',
          'A call with this Idempotency-Key is under way, or was cut off: see GET /api/v1/messages before sending anew with another key.',
        );
      if (earlier.state === 'done') {
        res
          .writeHead(earlier.status, {
            'content-type': 'application/json',
            'cache-control': 'no-store',
            'idempotent-replayed': 'true',
          })
          .end(earlier.response);
        return;
      }
      let out: { status: number; body: unknown };
      try {
        out = await send();
      } catch (err) {
        // Nothing was queued: a retry with the key may try again.
        await deps.spool.idempotency.abandon(caller.keyId, idemKey);
        throw err;
      }
      const text = JSON.stringify(out.body);
      await deps.spool.idempotency.finish(caller.keyId, idemKey, out.status, text);
      res
        .writeHead(out.status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(text);
      return;
    }
    const one = /^\/api\/v1\/messages\/([0-9A-Za-z]{1,64})$/.exec(path);
    if (one) {
      if (req.method !== 'GET') throw problem(405, 'Method not allowed', undefined, {}, { allow: 'GET' });
      requireScope(caller, 'read');
      const doc = await showMessage(deps.spool, one[1]!, caller.accountId ?? undefined);
      if (!doc) throw problem(404, 'Not found', `No message ${one[1]!}.`);
      sendJson(res, 200, doc);
      return;
    }
    throw problem(404, 'Not found', `No API endpoint ${path}.`);
  };

  return {
    async handle(req, res) {
      const path = new URL(req.url ?? '/', 'http://petrel').pathname;
      if (path !== '/api/v1' && !path.startsWith('/api/v1/')) return false;
      const requestId = randomBytes(8).toString('hex');
      if (path === '/api/v1/openapi.json' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' });
        res.end(openApi);
        return true;
      }
      try {
        await route(req, res, path, requestId);
      } catch (err) {
        if (err instanceof ProblemError) {
          // What the client could not have done right is not ours to log at error level.
          if (err.problem.status >= 500)
            logger.warn(
              { requestId, path, status: err.problem.status, detail: err.problem.detail },
              'api request refused',
            );
          sendProblem(res, { ...err.problem, requestId }, err.headers);
        } else {
          logger.error({ err, requestId, path }, 'api request failed');
          sendProblem(res, {
            status: 500,
            title: 'Internal error',
            detail: 'Petrel could not complete the request.',
            requestId,
          });
        }
      }
      return true;
    },
  };
}
