import { randomBytes } from 'node:crypto';

/** One header field as it appears in the message, folded lines and final CRLF included. */
export interface HeaderField {
  /** Field name, lower-cased. */
  readonly name: string;
  readonly raw: Buffer;
}

export interface ParsedMessage {
  readonly headers: readonly HeaderField[];
  /** Everything after the blank line that ends the header block (may be empty). */
  readonly body: Buffer;
}

/** Why a message is refused; `enhanced` and `text` go on the wire. */
export interface MessageProblem {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

export interface MessageLimits {
  readonly maxLineLength: number;
  readonly maxHeaderSize: number;
  readonly maxReceivedHeaders: number;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * Refuses what could be read differently by another server: a bare LF, a bare CR or a NUL can
 * carry an end-of-data look-alike (SMTP smuggling), so only CRLF line endings pass. Also
 * enforces the line length. Scans with indexOf, which runs at native speed.
 */
export function checkLineEndings(data: Buffer, maxLineLength: number): MessageProblem | null {
  if (data.indexOf(0) !== -1) return { code: 554, enhanced: '5.6.0', text: 'Message contains a NUL byte' };
  let lineStart = 0;
  for (let lf = data.indexOf(LF); lf !== -1; lf = data.indexOf(LF, lf + 1)) {
    if (lf === 0 || data[lf - 1] !== CR) {
      return { code: 554, enhanced: '5.6.0', text: 'Message contains a bare LF; lines must end with CRLF' };
    }
    if (lf - 1 - lineStart > maxLineLength) return lineTooLong(maxLineLength);
    lineStart = lf + 1;
  }
  if (data.length - lineStart > maxLineLength) return lineTooLong(maxLineLength);
  for (let cr = data.indexOf(CR); cr !== -1; cr = data.indexOf(CR, cr + 1)) {
    if (data[cr + 1] !== LF) {
      return { code: 554, enhanced: '5.6.0', text: 'Message contains a bare CR; lines must end with CRLF' };
    }
  }
  return null;
}

function lineTooLong(max: number): MessageProblem {
  return { code: 554, enhanced: '5.6.0', text: `Message has a line longer than ${max} bytes` };
}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** C0 controls but HTAB, and DEL; CR and LF reach here only as CRLF line ends (checkLineEndings). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const HEADER_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/**
 * Splits the header block from the body. Expects CRLF line endings (checkLineEndings first).
 * Every line of the header block must be a field or a continuation of one.
 */
export function parseMessage(data: Buffer, limits: MessageLimits): ParsedMessage | MessageProblem {
  const end = data.indexOf('\r\n\r\n');
  const headerEnd = data.subarray(0, 2).equals(Buffer.from('\r\n')) ? 0 : end === -1 ? data.length : end + 2;
  if (headerEnd > limits.maxHeaderSize) {
    return { code: 552, enhanced: '5.3.4', text: 'Message header block is too large' };
  }
  // Other software may read a control character as a line end or strip it, seeing other fields.
  if (HEADER_CONTROL.test(data.toString('latin1', 0, headerEnd))) {
    return { code: 554, enhanced: '5.6.0', text: 'Message header contains a control character' };
  }
  const headers: HeaderField[] = [];
  let pos = 0;
  while (pos < headerEnd) {
    let lineEnd = data.indexOf('\r\n', pos);
    if (lineEnd === -1 || lineEnd >= headerEnd) lineEnd = headerEnd;
    const first = data[pos];
    if (first === 0x20 || first === 0x09) {
      const last = headers.pop();
      if (!last) return malformed();
      headers.push({ name: last.name, raw: Buffer.concat([last.raw, data.subarray(pos, lineEnd + 2)]) });
    } else {
      const colon = data.indexOf(':', pos);
      if (colon === -1 || colon > lineEnd) return malformed();
      const name = data.toString('latin1', pos, colon).trimEnd();
      if (!FIELD_NAME.test(name)) return malformed();
      headers.push({ name: name.toLowerCase(), raw: data.subarray(pos, Math.min(lineEnd + 2, headerEnd)) });
    }
    pos = lineEnd + 2;
  }
  const received = headers.reduce((n, h) => (h.name === 'received' ? n + 1 : n), 0);
  if (received > limits.maxReceivedHeaders) {
    return { code: 554, enhanced: '5.4.6', text: 'Too many hops (Received headers); possible mail loop' };
  }
  const bodyStart = headerEnd === 0 ? 2 : Math.min(headerEnd + 2, data.length);
  return { headers, body: data.subarray(bodyStart) };
}

function malformed(): MessageProblem {
  return { code: 554, enhanced: '5.6.0', text: 'Malformed message header' };
}

export function isProblem(value: ParsedMessage | MessageProblem): value is MessageProblem {
  return 'code' in value;
}

/** The unfolded value of a header field (after the colon), decoded as UTF-8. */
export function headerValue(field: HeaderField): string {
  const text = field.raw.toString('utf8');
  return text
    .slice(text.indexOf(':') + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .trim();
}

/**
 * The addr-specs of an address-list header (From:, Sender:). Display names, quoted strings and
 * comments are skipped; group syntax yields its members.
 */
export function extractAddresses(value: string): string[] {
  const stripped = stripQuotedAndComments(value);
  const out: string[] = [];
  for (const m of stripped.matchAll(/<([^<>]*)>/g)) {
    const addr = m[1]!.trim();
    out.push(addr.includes(':') ? addr.slice(addr.lastIndexOf(':') + 1) : addr);
  }
  if (out.length > 0) return out;
  for (const part of stripped.replace(/^[^:@]*:/, '').split(/[,;]/)) {
    const addr = part.trim();
    if (addr) out.push(addr);
  }
  return out;
}

function stripQuotedAndComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      continue;
    }
    if (c === '"' && depth === 0) {
      quoted = true;
      continue;
    }
    if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out;
}

export interface NormalizeInput {
  readonly parsed: ParsedMessage;
  readonly receivedHeader: string;
  readonly hostname: string;
  readonly queueId: string;
  readonly now: Date;
  /** Complete header fields (CRLF-terminated) to add at the end of the header block. */
  readonly extraHeaders?: readonly string[];
}

export interface Normalized {
  readonly data: Buffer;
  readonly messageId: string;
}

/**
 * The message as it will be stored and sent: a Received header on top, Bcc and X-Petrel-* dropped,
 * Message-ID and Date added when missing, `extraHeaders` appended. Everything else is kept byte for byte.
 */
export function normalizeMessage(input: NormalizeInput): Normalized {
  const { parsed } = input;
  // Bcc must not reveal hidden recipients; X-Petrel-* are instructions to Petrel, not content.
  const kept = parsed.headers.filter((h) => h.name !== 'bcc' && !h.name.startsWith('x-petrel-'));
  const parts: Buffer[] = [Buffer.from(input.receivedHeader, 'utf8')];
  for (const h of kept) parts.push(h.raw);
  const existingId = kept.find((h) => h.name === 'message-id');
  let messageId: string;
  if (existingId) {
    messageId = headerValue(existingId);
  } else {
    messageId = `<${input.queueId}.${randomBytes(6).toString('hex')}@${input.hostname}>`;
    parts.push(Buffer.from(`Message-ID: ${messageId}\r\n`));
  }
  if (!kept.some((h) => h.name === 'date')) parts.push(Buffer.from(`Date: ${rfc5322Date(input.now)}\r\n`));
  for (const field of input.extraHeaders ?? []) parts.push(Buffer.from(field, 'utf8'));
  // The last header may lack its CRLF when the message had no body at all.
  const last = parts[parts.length - 1]!;
  if (!last.subarray(-2).equals(Buffer.from('\r\n'))) parts.push(Buffer.from('\r\n'));
  parts.push(Buffer.from('\r\n'), parsed.body);
  return { data: Buffer.concat(parts), messageId };
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 date-time in UTC, e.g. `Mon, 23 Nov 2026 21:18:26 +0000`. */
export function rfc5322Date(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`
  );
}
