import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logging/index.js';
import type { Spool } from '../spool/index.js';
import { unsubscribe } from '../suppression/index.js';

const page = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
  `<title>${title}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}` +
  `button{font:inherit;padding:.5rem 1.2rem}</style></head><body>${body}</body></html>`;

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-robots-tag': 'noindex' });
  res.end(html);
}

/**
 * List-Unsubscribe for marketing mail. GET shows a confirmation page (mail scanners follow
 * links, so GET never unsubscribes); POST unsubscribes, as RFC 8058 one-click does with the
 * body `List-Unsubscribe=One-Click`.
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
  if (req.method === 'GET') {
    send(
      res,
      200,
      page(
        'Unsubscribe',
        `<h1>Unsubscribe</h1><p>Stop receiving marketing mail at this address?</p>` +
          `<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button>Unsubscribe</button></form>`,
      ),
    );
    return;
  }
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'GET, POST' }).end();
    return;
  }
  // The body is small by spec; anything large is not a one-click request.
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > 4096) {
      res.writeHead(413).end();
      return;
    }
  }
  await unsubscribe(spool, found.accountId, found.address, 'one-click');
  logger.info({ event: 'suppressed', reason: 'unsubscribe', source: 'one-click' }, 'unsubscribed');
  onUnsubscribe?.();
  send(res, 200, page('Unsubscribed', '<h1>You are unsubscribed</h1><p>You will get no more marketing mail from this sender.</p>'));
}
