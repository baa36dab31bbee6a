import { randomBytes } from 'node:crypto';
import type { NewMessage, ReplyRecord } from '../spool/index.js';
import { mentionedAddresses } from '../privacy/index.js';
import { encodeQuotedPrintable, hasEightBitBytes, parseAddress } from '../shared/index.js';

export interface FailedRecipient {
  readonly address: string;
  readonly action: 'failed' | 'delayed';
  /** RFC 3463 status, e.g. 5.1.1; 4.4.7 for an expired recipient. */
  readonly status: string;
  readonly reply: ReplyRecord | null;
  readonly mx: string | null;
  readonly lastAttemptAt: number;
  /** Only for `delayed`: when the recipient expires (RFC 3464 Will-Retry-Until). */
  readonly willRetryUntil?: number;
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
  const controls = /[\x00-\x1f\x7f]+/g;
  return text.replace(controls, ' ').trim().slice(0, max);
}

/** One character as RFC 6533 `\x{HEX}` (upper-case hex, at least two digits). */
function hexPoint(ch: string): string {
  return `\\x{${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(2, '0')}}`;
}

/**
 * The utf-8-addr-xtext form a message/delivery-status field must use (RFC 6533 §3): non-ASCII
 * characters, and `+`, `=`, `\` and space, which would be ambiguous, as `\x{HEX}`.
 */
function xtext(text: string): string {
  return text.replace(/[^\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]/gu, hexPoint);
}

/** Final-Recipient: `rfc822;` for an ASCII address, RFC 6533 `utf-8;` in xtext otherwise. */
function finalRecipient(address: string): string {
  const value = oneLine(address, 320);
  return hasEightBitBytes(value) ? `utf-8; ${xtext(value)}` : `rfc822; ${value}`;
}

/** A delivery-status field value in 7 bits: non-ASCII characters as `\x{HEX}`. */
function asciiField(text: string, max?: number): string {
  return oneLine(text, max).replace(/[^\p{ASCII}]/gu, hexPoint);
}

/** A text part's body and its Content-Transfer-Encoding: 7bit when it is ASCII, else quoted-printable. */
function textPart(bytes: Buffer): { encoding: string; body: Buffer } {
  const latin1 = bytes.toString('latin1');
  if (!hasEightBitBytes(latin1)) return { encoding: '7bit', body: bytes };
  return { encoding: 'quoted-printable', body: Buffer.from(encodeQuotedPrintable(latin1), 'latin1') };
}

// A delayed recipient's status is transient whatever the last reply said (RFC 3464 §2.3.4).
function statusOf(r: FailedRecipient): string {
  const valid = r.action === 'failed' ? /^[245]\.\d{1,3}\.\d{1,3}$/ : /^4\.\d{1,3}\.\d{1,3}$/;
  if (valid.test(r.status)) return r.status;
  return r.action === 'failed' ? '5.0.0' : '4.0.0';
}

const dateField = (ms: number): string => new Date(ms).toUTCString().replace('GMT', '+0000');

/**
 * A delivery status notification (RFC 3464 multipart/report) to the original sender, queued
 * with a null reverse-path so that it can never cause another DSN. Returns null for a message
 * that itself had a null sender. When every recipient is `delayed` it is a warning (Postfix's
 * "Delayed Mail"): nothing failed yet, and it says until when delivery is retried.
 */
export function buildDsn(input: DsnInput): NewMessage | null {
  if (input.originalMailFrom === '') return null;
  const to = parseAddress(input.originalMailFrom);
  if (!to) return null;
  const boundary = `petrel-report-${randomBytes(12).toString('hex')}`;
  const date = dateField(input.now);
  const warning = input.recipients.every((r) => r.action === 'delayed');
  const headerEnd = input.original.indexOf('\r\n\r\n');
  const originalHeaders = input.original.subarray(
    0,
    Math.min(headerEnd === -1 ? input.original.length : headerEnd + 2, MAX_RETURNED_HEADERS),
  );

  const human = input.recipients
    .map((r) => {
      const reply = r.reply ? `${r.reply.code} ${r.reply.enhanced} ${r.reply.text}` : 'no reply';
      const why =
        r.action === 'delayed'
          ? 'is delayed: it was deferred'
          : r.status === '4.4.7'
            ? 'could not be delivered before the message expired'
            : 'was refused';
      const until =
        r.willRetryUntil === undefined ? '' : `\r\n    Retried until ${dateField(r.willRetryUntil)}.`;
      return `<${oneLine(r.address, 320)}>: ${why}${r.mx ? ` by ${oneLine(r.mx, 255)}` : ''}:\r\n    ${oneLine(reply)}${until}`;
    })
    .join('\r\n\r\n');

  const perRecipient = input.recipients
    .map((r) => {
      const lines = [
        `Final-Recipient: ${finalRecipient(r.address)}`,
        `Action: ${r.action}`,
        `Status: ${statusOf(r)}`,
      ];
      if (r.mx) lines.push(`Remote-MTA: dns; ${asciiField(r.mx, 255)}`);
      if (r.reply)
        lines.push(
          `Diagnostic-Code: smtp; ${asciiField(`${r.reply.code} ${r.reply.enhanced} ${r.reply.text}`)}`,
        );
      lines.push(`Last-Attempt-Date: ${dateField(r.lastAttemptAt)}`);
      if (r.action === 'delayed' && r.willRetryUntil !== undefined)
        lines.push(`Will-Retry-Until: ${dateField(r.willRetryUntil)}`);
      return lines.join('\r\n');
    })
    .join('\r\n\r\n');

  const messageId = `<dsn.${randomBytes(8).toString('hex')}@${input.reportingMta}>`;
  // Every part is 7-bit, so the DSN reaches a sender's MX without 8BITMIME: a null-sender
  // message that is refused is lost, with nobody left to tell.
  const explanation = textPart(
    Buffer.from(
      `This is the mail system at ${input.reportingMta}.\r\n\r\n` +
        (warning
          ? `This is a warning only: you do not need to send your message again.\r\n\r\n` +
            `Your message has not been delivered yet to one or more recipients. Delivery is\r\n` +
            `retried; you will be told if it fails for good.\r\n\r\n`
          : `Your message could not be delivered to one or more recipients.\r\n\r\n`) +
        `${human}\r\n`,
      'utf8',
    ),
  );
  const headers = textPart(originalHeaders);
  const text =
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>\r\n` +
    `To: <${input.originalMailFrom}>\r\n` +
    `Subject: ${warning ? 'Delayed Mail (still being retried)' : 'Undelivered Mail Returned to Sender'}\r\n` +
    `Date: ${date}\r\n` +
    `Message-ID: ${messageId}\r\n` +
    `Auto-Submitted: auto-replied\r\n` +
    `MIME-Version: 1.0\r\n` +
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"\r\n` +
    `\r\n` +
    `This is a delivery status notification in MIME format.\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n` +
    `Content-Transfer-Encoding: ${explanation.encoding}\r\n\r\n`;
  const report =
    `\r\n--${boundary}\r\n` +
    `Content-Type: message/delivery-status\r\n\r\n` +
    `Reporting-MTA: dns; ${input.reportingMta}\r\n` +
    `X-Petrel-Queue-ID: ${input.originalMessageId}\r\n` +
    `Arrival-Date: ${dateField(input.arrivalDate)}\r\n\r\n` +
    `${perRecipient}\r\n` +
    `\r\n--${boundary}\r\n` +
    `Content-Type: text/rfc822-headers\r\n` +
    `Content-Transfer-Encoding: ${headers.encoding}\r\n\r\n`;
  const body = Buffer.concat([
    Buffer.from(text, 'utf8'),
    explanation.body,
    Buffer.from(report, 'utf8'),
    headers.body,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
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
