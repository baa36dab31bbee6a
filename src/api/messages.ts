import type { IncomingMessage } from 'node:http';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { z } from 'zod';
import { parseAddress, SmtpReplyError } from '../shared/index.js';
import type { Account } from '../spool/index.js';
import type { DirectResult, DirectSubmission } from '../submission/index.js';
import type { ApiCaller } from './auth.js';
import { problem } from './problem.js';

/** Most recipients one call may name (to, cc and bcc together, or the envelope's). */
export const MAX_RECIPIENTS = 1000;

const address = z.string().min(3).max(320);
const addresses = z.union([address, z.array(address)]).transform((v) => (Array.isArray(v) ? v : [v]));

const composed = z.strictObject({
  account: z.string().optional().describe('The sending account; only an operator key names one.'),
  from: z
    .string()
    .min(3)
    .max(998)
    .describe('From: "Name <addr>" or an address; its domain must be the account\'s.'),
  to: addresses.default([]),
  cc: addresses.default([]),
  bcc: addresses.default([]).describe('Envelope recipients not shown in the message.'),
  reply_to: z.string().max(998).optional(),
  subject: z.string().max(998).default(''),
  text: z.string().optional(),
  html: z.string().optional(),
  headers: z.record(z.string().regex(/^[!-9;-~]{1,76}$/), z.string().max(998)).default({}),
  stream: z.enum(['transactional', 'marketing']).optional(),
  attachments: z
    .array(
      z.strictObject({
        filename: z.string().min(1).max(255),
        content: z.string().describe('Base64.'),
        content_type: z.string().max(255).optional(),
      }),
    )
    .default([]),
});

const raw = z.strictObject({
  account: z.string().optional(),
  envelope: z.strictObject({
    from: z.string().max(320).describe('MAIL FROM; "" for a null sender.'),
    to: z.array(address).min(1),
  }),
  raw: z.string().min(1).describe('The RFC 5322 message, as text.'),
});

export const sendSchema = z.union([raw, composed]);
export type SendRequest = z.infer<typeof sendSchema>;

/**
 * The schema a request is checked against: a union's error says only "Invalid input", so a body
 * that names `raw` or `envelope` is read as a raw message and any other as a composed one.
 */
export function sendSchemaFor(value: unknown): z.ZodType<SendRequest> {
  const rawish = typeof value === 'object' && value !== null && ('raw' in value || 'envelope' in value);
  return rawish ? raw : composed;
}

const crlf = (text: string): Buffer => Buffer.from(text.replace(/\r?\n/g, '\r\n'));

function envelopeAddress(text: string): string {
  const m = /<([^<>]+)>\s*$/.exec(text);
  return (m ? m[1]! : text).trim();
}

/** The message and its envelope, built (composed requests) with nodemailer's composer. */
export async function buildMessage(
  body: SendRequest,
): Promise<{ data: Buffer; mailFrom: string; rcptTo: string[] }> {
  if ('raw' in body) return { data: crlf(body.raw), mailFrom: body.envelope.from, rcptTo: body.envelope.to };
  const rcptTo = [...body.to, ...body.cc, ...body.bcc].map(envelopeAddress);
  if (rcptTo.length === 0) throw problem(422, 'No recipients', 'Give at least one of to, cc or bcc.');
  const headers: Record<string, string> = { ...body.headers };
  if (body.stream) headers['X-Petrel-Stream'] = body.stream;
  const composer = new MailComposer({
    from: body.from,
    ...(body.to.length > 0 ? { to: body.to } : {}),
    ...(body.cc.length > 0 ? { cc: body.cc } : {}),
    ...(body.reply_to ? { replyTo: body.reply_to } : {}),
    subject: body.subject,
    ...(body.text !== undefined ? { text: body.text } : {}),
    ...(body.html !== undefined ? { html: body.html } : {}),
    headers,
    attachments: body.attachments.map((a) => ({
      filename: a.filename,
      content: Buffer.from(a.content, 'base64'),
      ...(a.content_type ? { contentType: a.content_type } : {}),
    })),
  });
  const data = await new Promise<Buffer>((resolve, reject) =>
    composer.compile().build((err, out) => (err ? reject(err) : resolve(out))),
  );
  return { data: crlf(data.toString('latin1')), mailFrom: envelopeAddress(body.from), rcptTo };
}

/** The HTTP status for a message SMTP would have refused at the end of DATA. */
function statusOf(err: SmtpReplyError): number {
  if (err.responseCode === 552) return 413;
  if (err.responseCode >= 500) return 422;
  return 503;
}

export interface SendDeps {
  readonly submit: (input: DirectSubmission) => Promise<DirectResult>;
  readonly account: (caller: ApiCaller, named: string | undefined) => Promise<Account>;
}

/** POST /api/v1/messages: 202 once the message is on disk, with each recipient's status. */
export async function sendMessage(
  deps: SendDeps,
  caller: ApiCaller,
  body: SendRequest,
  req: IncomingMessage,
  requestId: string,
  remoteAddress: string,
): Promise<{ status: number; body: unknown }> {
  const account = await deps.account(caller, body.account);
  const built = await buildMessage(body);
  if (built.rcptTo.length > MAX_RECIPIENTS)
    throw problem(
      422,
      'Too many recipients',
      `At most ${MAX_RECIPIENTS} per call; this one has ${built.rcptTo.length}.`,
    );
  const bad = built.rcptTo.find((a) => !parseAddress(a));
  if (bad !== undefined)
    throw problem(422, 'Bad recipient address', `"${bad}" is not an address.`, { recipient: bad });
  try {
    const result = await deps.submit({
      account,
      mailFrom: built.mailFrom,
      rcptTo: built.rcptTo,
      data: built.data,
      requestId,
      remoteAddress,
      protocol: (req.socket as { encrypted?: boolean }).encrypted ? 'HTTPS' : 'HTTP',
    });
    if (result.ids.length === 0)
      throw problem(422, 'No recipient accepted', 'Every recipient was refused; see recipients.', {
        recipients: result.recipients,
      });
    return { status: 202, body: { id: result.ids[0], ids: result.ids, recipients: result.recipients } };
  } catch (err) {
    if (!(err instanceof SmtpReplyError)) throw err;
    const status = statusOf(err);
    throw problem(
      status,
      status === 503 ? 'Try again later' : 'Message refused',
      err.message,
      { smtp: { code: err.responseCode, enhanced: err.enhanced } },
      status === 503 ? { 'retry-after': '60' } : {},
    );
  }
}
