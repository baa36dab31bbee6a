import { isAscii } from 'node:buffer';
import { domainToASCII } from 'node:url';

/** What the server advertised for the current (possibly TLS) EHLO. */
export interface ServerFeatures {
  /** The EHLO keywords, upper case; empty after a HELO. */
  readonly extensions: ReadonlySet<string>;
  /** SIZE limit in bytes, 0 when none was advertised. */
  readonly maxSize: number;
  /** AUTH mechanisms offered, upper case. */
  readonly auth: ReadonlySet<string>;
}

export const NO_FEATURES: ServerFeatures = { extensions: new Set(), maxSize: 0, auth: new Set() };

/** Reads an EHLO reply (raw, as {@link WireReply} has it): every line after the first is a keyword and its parameters. */
export function featuresOfEhlo(raw: string): ServerFeatures {
  const extensions = new Set<string>();
  const auth = new Set<string>();
  let maxSize = 0;
  const lines = raw.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const words = lines[i]!.slice(4)
      .trim()
      .split(/[\s=]+/);
    const keyword = words[0]?.toUpperCase();
    if (!keyword) continue;
    extensions.add(keyword);
    if (keyword === 'SIZE') maxSize = Number(words[1]) || 0;
    if (keyword === 'AUTH') for (const m of words.slice(1)) auth.add(m.toUpperCase());
  }
  return { extensions, maxSize, auth };
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

export function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0] ?? '';
}
