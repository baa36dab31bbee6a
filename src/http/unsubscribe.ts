import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logging/index.js';
import type { Spool } from '../spool/index.js';
import { unsubscribe as recordUnsubscribe } from '../suppression/index.js';

const page = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
  `<title>${title}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}` +
  `button{font:inherit;padding:.5rem 1.2rem}</style></head><body>${body}</body></html>`;

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-robots-tag': 'noindex',
  });
  res.end(html);
}

/**
 * List-Unsubscribe for marketing mail. GET (and HEAD) shows a confirmation page (mail scanners
 * follow links, so GET never unsubscribes); POST unsubscribes only with the RFC 8058 one-click
 * body `List-Unsubscribe=One-Click` (the page's form sends it too). A POST without it gets the
 * confirmation page, as GET does.
 */
export async function handleUnsubscribe(
  req: IncomingMessage,
  res: ServerResponse,
  token: string,
  spool: Spool,
  logger: Logger,
  onUnsubscribe?: () => void,
): Promise<void> {
  const found = await spool.suppressions.resolveUnsubscribeToken(token);
  if (!found) {
    send(res, 404, page('Link expired', '<h1>This link is not valid</h1><p>It may have expired.</p>'));
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
    res.writeHead(405, { allow: 'GET, HEAD, POST' }).end();
    return;
  }
  if (req.method === 'POST') {
    const body = await readSmallBody(req);
    if (body === null) {
      res.writeHead(413).end();
      return;
    }
    if (isOneClick(req.headers['content-type'], body)) {
      await unsubscribe(found, spool, logger, onUnsubscribe);
      send(
        res,
        200,
        page(
          'Unsubscribed',
          '<h1>You are unsubscribed</h1><p>You will get no more marketing mail from this sender.</p>',
        ),
      );
      return;
    }
  }
  // Node leaves the body out of a HEAD response itself.
  send(
    res,
    200,
    page(
      'Unsubscribe',
      `<h1>Unsubscribe</h1><p>Stop receiving marketing mail at this address?</p>` +
        `<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button>Unsubscribe</button></form>`,
    ),
  );
}

/** The body of a request, or null past 4 KiB: a one-click body is small by spec. */
async function readSmallBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > 4096) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** RFC 8058: the key/value `List-Unsubscribe=One-Click`, form-encoded or as a multipart field. */
function isOneClick(contentType: string | undefined, body: string): boolean {
  if (/^\s*multipart\/form-data/i.test(contentType ?? '')) {
    return /content-disposition:[^\r\n]*\bname="List-Unsubscribe"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\nOne-Click\r?\n/i.test(
      body,
    );
  }
  return new URLSearchParams(body.trim()).getAll('List-Unsubscribe').includes('One-Click');
}

async function unsubscribe(
  found: { accountId: number | null; address: string },
  spool: Spool,
  logger: Logger,
  onUnsubscribe?: () => void,
): Promise<void> {
  await recordUnsubscribe(spool, found.accountId, found.address, 'one-click');
  logger.info({ event: 'suppressed', reason: 'unsubscribe', source: 'one-click' }, 'unsubscribed');
  onUnsubscribe?.();
}
