import { isAscii } from 'node:buffer';
import { domainToASCII } from 'node:url';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { localOutcome, outcomeOf, parseReply, type DeliveryOutcome } from './outcome.js';

/**
 * The error nodemailer's SMTPConnection hands to callbacks and 'error' listeners: `code` is
 * its category (ECONNECTION, ETIMEDOUT, ETLS, EENVELOPE, EMESSAGE, …), `response` the raw
 * server reply when there was one, `command` the step that failed.
 */
export interface ClientError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: ClientError[];
}

/**
 * SMTPConnection keeps what EHLO advertised in fields it does not export. Read them here and
 * nowhere else, so a nodemailer upgrade that renames them breaks one function (and the
 * 8BITMIME/SMTPUTF8/SIZE integration tests), not the delivery logic.
 */
interface ConnectionInternals {
  _supportedExtensions?: unknown;
  _maxAllowedSize?: unknown;
}

/** What the server advertised for the current (possibly TLS) EHLO. */
export interface ServerFeatures {
  readonly extensions: ReadonlySet<string>;
  /** SIZE limit in bytes, 0 when none was advertised. */
  readonly maxSize: number;
}

export function featuresOf(conn: SMTPConnection): ServerFeatures {
  const internals = conn as unknown as ConnectionInternals;
  const list = Array.isArray(internals._supportedExtensions) ? internals._supportedExtensions : [];
  const extensions = new Set(
    list.filter((e): e is string => typeof e === 'string').map((e) => e.toUpperCase()),
  );
  const maxSize = typeof internals._maxAllowedSize === 'number' ? internals._maxAllowedSize : 0;
  return { extensions, maxSize };
}

/** True when the message has bytes above 0x7f and so needs BODY=8BITMIME. */
export function hasEightBit(message: Uint8Array): boolean {
  return !isAscii(message);
}

const NON_ASCII = /[\u0080-\uffff]/;

/**
 * The address as it may go on the wire. Without SMTPUTF8 an internationalized domain is sent
 * in A-labels (IDNA), but a non-ASCII local part cannot be downgraded: null (RFC 6531 §3.2).
 */
export function wireAddress(address: string, smtpUtf8: boolean): string | null {
  if (smtpUtf8 || !NON_ASCII.test(address)) return address;
  const at = address.lastIndexOf('@');
  if (at < 0) return null;
  const local = address.slice(0, at);
  if (NON_ASCII.test(local)) return null;
  const ascii = domainToASCII(address.slice(at + 1));
  return ascii === '' ? null : `${local}@${ascii}`;
}

/** True for errors after which the connection is gone (as opposed to a refused transaction). */
export function isConnectionError(err: ClientError): boolean {
  return err.code !== 'EENVELOPE' && err.code !== 'EMESSAGE';
}

/**
 * The outcome for a recipient whose transaction ended in `err` without a reply of its own:
 * the server's reply when the error carries one (a 4xx/5xx to DATA or after the dot, a 421),
 * otherwise a transient local reply, since a lost connection or timeout may succeed later.
 */
export function outcomeOfError(err: ClientError, mx: string): DeliveryOutcome {
  const reply = err.response ? parseReply(err.response) : null;
  if (reply && reply.code >= 400) return outcomeOf(reply, mx);
  if (err.code === 'ETIMEDOUT') return localOutcome(451, '4.4.2', `timeout waiting for ${mx}`, mx);
  return localOutcome(451, '4.4.2', `connection to ${mx} lost: ${firstLine(err.message)}`, mx);
}

/** The outcome for an RCPT TO reply nodemailer reported as a rejection. */
export function outcomeOfRejection(err: ClientError, mx: string): DeliveryOutcome {
  const reply = err.response ? parseReply(err.response) : null;
  return reply ? outcomeOf(reply, mx) : outcomeOfError(err, mx);
}

export function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0] ?? '';
}
