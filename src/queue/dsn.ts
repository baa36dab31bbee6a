import { randomBytes } from 'node:crypto';
import type { NewMessage, ReplyRecord } from '../spool/index.js';
import { mentionedAddresses } from '../privacy/index.js';
import { parseAddress } from '../shared/index.js';

export interface FailedRecipient {
  readonly address: string;
  readonly action: 'failed' | 'delayed';
  /** RFC 3463 status, e.g. 5.1.1; 4.4.7 for an expired recipient. */
  readonly status: string;
  readonly reply: ReplyRecord | null;
  readonly mx: string | null;
  readonly lastAttemptAt: number;
}

export interface DsnInput {
  readonly reportingMta: string;
  readonly originalMessageId: string;
  readonly originalMailFrom: string;
  readonly originalAccountId: number | null;
  readonly arrivalDate: number;
  readonly recipients: readonly FailedRecipient[];
  /** The original message; only its header block is returned. */
  readonly original: Buffer;
  readonly now: number;
}

const MAX_RETURNED_HEADERS = 64 * 1024;

/** Strips anything that could end a header or MIME line early (CR, LF, other controls). */
function oneLine(text: string, max = 900): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, max);
}

function statusOf(r: FailedRecipient): string {
  if (/^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status)) return r.status;
  return r.action === 'failed' ? '5.0.0' : '4.0.0';
}

/**
 * A delivery status notification (RFC 3464 multipart/report) to the original sender, queued
 * with a null reverse-path so that it can never cause another DSN. Returns null for a message
 * that itself had a null sender.
 */
export function buildDsn(input: DsnInput): NewMessage | null {
  if (input.originalMailFrom === '') return null;
  const to = parseAddress(input.originalMailFrom);
  if (!to) return null;
  const boundary = `petrel-report-${randomBytes(12).toString('hex')}`;
  const date = new Date(input.now).toUTCString().replace('GMT', '+0000');
  const headerEnd = input.original.indexOf('\r\n\r\n');
  const originalHeaders = input.original.subarray(
    0,
    Math.min(headerEnd === -1 ? input.original.length : headerEnd + 2, MAX_RETURNED_HEADERS),
  );

  const human = input.recipients
    .map((r) => {
      const reply = r.reply ? `${r.reply.code} ${r.reply.enhanced} ${r.reply.text}` : 'no reply';
      const why = r.status === '4.4.7' ? 'could not be delivered before the message expired' : 'was refused';
      return `<${oneLine(r.address, 320)}>: ${why}${r.mx ? ` by ${oneLine(r.mx, 255)}` : ''}:\r\n    ${oneLine(reply)}`;
    })
    .join('\r\n\r\n');

  const perRecipient = input.recipients
    .map((r) => {
      const lines = [
        `Final-Recipient: rfc822; ${oneLine(r.address, 320)}`,
        `Action: ${r.action}`,
        `Status: ${statusOf(r)}`,
      ];
      if (r.mx) lines.push(`Remote-MTA: dns; ${oneLine(r.mx, 255)}`);
      if (r.reply) lines.push(`Diagnostic-Code: smtp; ${oneLine(`${r.reply.code} ${r.reply.enhanced} ${r.reply.text}`)}`);
      lines.push(`Last-Attempt-Date: ${new Date(r.lastAttemptAt).toUTCString().replace('GMT', '+0000')}`);
      return lines.join('\r\n');
    })
    .join('\r\n\r\n');

  const messageId = `<dsn.${randomBytes(8).toString('hex')}@${input.reportingMta}>`;
  const text =
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>\r\n` +
    `To: <${input.originalMailFrom}>\r\n` +
    `Subject: Undelivered Mail Returned to Sender\r\n` +
    `Date: ${date}\r\n` +
    `Message-ID: ${messageId}\r\n` +
    `Auto-Submitted: auto-replied\r\n` +
    `MIME-Version: 1.0\r\n` +
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"\r\n` +
    `\r\n` +
    `This is a delivery status notification in MIME format.\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n` +
    `Content-Transfer-Encoding: 8bit\r\n\r\n` +
    `This is the mail system at ${input.reportingMta}.\r\n\r\n` +
    `Your message could not be delivered to one or more recipients.\r\n\r\n` +
    `${human}\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Type: message/delivery-status\r\n\r\n` +
    `Reporting-MTA: dns; ${input.reportingMta}\r\n` +
    `X-Petrel-Queue-ID: ${input.originalMessageId}\r\n` +
    `Arrival-Date: ${new Date(input.arrivalDate).toUTCString().replace('GMT', '+0000')}\r\n\r\n` +
    `${perRecipient}\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Type: text/rfc822-headers\r\n\r\n`;
  const body = Buffer.concat([Buffer.from(text, 'utf8'), originalHeaders, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  return {
    accountId: input.originalAccountId,
    mailFrom: '',
    recipients: [{ address: input.originalMailFrom, domain: to.domain }],
    headerMessageId: messageId,
    body,
    listener: 'dsn',
    // The report names the failed recipients and returns the original's header fields.
    mentions: mentionedAddresses(body),
  };
}
