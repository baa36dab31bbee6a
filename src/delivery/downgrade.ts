import { parseContentType } from '../bounce/index.js';
import { encodeBase64Lines, encodeQuotedPrintable, encodeWords, hasEightBitBytes } from '../shared/index.js';

/** Header fields whose whole value is text, so 8-bit in them can become encoded-words. */
const UNSTRUCTURED = new Set(['subject', 'comments', 'content-description']);
const MAX_DEPTH = 32;

interface Field {
  /** Lowercased name. */
  readonly name: string;
  /** The whole field as received, folding included, without its final CRLF. */
  readonly text: string;
}

interface Entity {
  readonly fields: Field[];
  /** The blank line and everything after it; "" for a header block without a body. */
  readonly rest: string;
}

function splitEntity(raw: string): Entity {
  const end = raw.startsWith('\r\n') ? 0 : raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const rest = end === -1 ? '' : raw.slice(end === 0 ? 0 : end + 2);
  const fields: Field[] = [];
  for (const line of head === '' ? [] : head.split('\r\n')) {
    const prev = fields[fields.length - 1];
    if (prev && /^[ \t]/.test(line)) {
      fields[fields.length - 1] = { name: prev.name, text: `${prev.text}\r\n${line}` };
    } else {
      const colon = line.indexOf(':');
      fields.push({ name: (colon === -1 ? line : line.slice(0, colon)).trim().toLowerCase(), text: line });
    }
  }
  return { fields, rest };
}

function valueOf(field: Field | undefined): string | undefined {
  if (!field) return undefined;
  return field.text
    .slice(field.text.indexOf(':') + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .trim();
}

function utf8Text(bytes: string): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(bytes, 'latin1'));
  } catch {
    return null;
  }
}

/** Header fields without 8-bit bytes, or null when one cannot be expressed in 7 bits. */
function sevenBitFields(fields: readonly Field[]): Field[] | null {
  const out: Field[] = [];
  for (const field of fields) {
    if (!hasEightBitBytes(field.text)) {
      out.push(field);
      continue;
    }
    const text = UNSTRUCTURED.has(field.name) ? utf8Text(valueOf(field) ?? '') : null;
    if (text === null) return null;
    const name = field.text.slice(0, field.text.indexOf(':'));
    out.push({ name: field.name, text: `${name}:\r\n ${encodeWords(text)}` });
  }
  return out;
}

function join(fields: readonly Field[], rest: string): string {
  return fields.map((f) => `${f.text}\r\n`).join('') + rest;
}

function withField(fields: readonly Field[], name: string, text: string): Field[] {
  const lower = name.toLowerCase();
  const i = fields.findIndex((f) => f.name === lower);
  const field = { name: lower, text: `${name}: ${text}` };
  return i === -1 ? [...fields, field] : fields.map((f, j) => (j === i ? field : f));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** 8-bit bytes in a preamble or epilogue, which readers ignore, become "?". */
function scrub(text: string): string {
  return text.replace(/[\x80-\xff]/g, '?');
}

function multipartBody(body: string, boundary: string, depth: number): string | null {
  const delimiter = new RegExp(`(^|\\r\\n)--${escapeRegExp(boundary)}(--)?[ \\t]*(?=\\r\\n|$)`, 'g');
  let out = '';
  let last = 0;
  let first = true;
  for (const m of body.matchAll(delimiter)) {
    const before = body.slice(last, m.index);
    const piece = first ? scrub(before) : part(before, boundary, depth);
    if (piece === null) return null;
    out += piece + m[0];
    last = m.index + m[0].length;
    first = false;
    if (m[2]) return out + scrub(body.slice(last));
  }
  if (first) return null;
  // No close delimiter: what follows the last delimiter is the last part.
  const tail = part(body.slice(last), boundary, depth);
  return tail === null ? null : out + tail;
}

/**
 * One body part between delimiters (it starts with the CRLF that ended the delimiter line);
 * null when it cannot be downgraded or its encoded form would contain the boundary.
 */
function part(raw: string, boundary: string, depth: number): string | null {
  const lead = raw.startsWith('\r\n') ? '\r\n' : '';
  const inner = entity(raw.slice(lead.length), false, depth + 1);
  if (inner === null || inner.includes(`\r\n--${boundary}`) || inner.startsWith(`--${boundary}`)) return null;
  return lead + inner;
}

function entity(raw: string, top: boolean, depth: number): string | null {
  if (depth > MAX_DEPTH) return null;
  const parsed = splitEntity(raw);
  let fields = sevenBitFields(parsed.fields);
  if (fields === null) return null;
  const { rest } = parsed;
  if (!hasEightBitBytes(rest)) return join(fields, rest);

  const contentType = fields.find((f) => f.name === 'content-type');
  const isMime = !top || contentType !== undefined || fields.some((f) => f.name === 'mime-version');
  const { type, params } = parseContentType(valueOf(contentType));
  const body = rest.startsWith('\r\n') ? rest.slice(2) : rest;
  if (top && isMime && !fields.some((f) => f.name === 'mime-version')) {
    fields = [...fields, { name: 'mime-version', text: 'MIME-Version: 1.0' }];
  }

  if (type.startsWith('multipart/')) {
    const boundary = params.get('boundary');
    const inner = boundary ? multipartBody(body, boundary, depth) : null;
    return inner === null ? null : join(fields, `\r\n${inner}`);
  }
  // RFC 2046 §5.2.1: message/rfc822 may not be base64 or QP; its own parts are downgraded instead.
  if (type === 'message/rfc822') {
    const inner = entity(body, true, depth + 1);
    return inner === null ? null : join(fields, `\r\n${inner}`);
  }
  const encoding = valueOf(fields.find((f) => f.name === 'content-transfer-encoding'))?.toLowerCase();
  // 8-bit bytes under a 7-bit encoding: the part is broken, and re-encoding would hide it.
  if (encoding === 'base64' || encoding === 'quoted-printable') return null;
  if (!isMime) {
    const charset = utf8Text(body) === null ? 'unknown-8bit' : 'utf-8';
    fields = [
      ...fields,
      { name: 'mime-version', text: 'MIME-Version: 1.0' },
      { name: 'content-type', text: `Content-Type: text/plain; charset=${charset}` },
    ];
  }
  const text = !isMime || type.startsWith('text/');
  fields = withField(fields, 'Content-Transfer-Encoding', text ? 'quoted-printable' : 'base64');
  return join(fields, `\r\n${text ? encodeQuotedPrintable(body) : encodeBase64Lines(body)}`);
}

/**
 * The message made 7-bit clean for a server without 8BITMIME (RFC 6152 §3): every 8bit or
 * binary leaf part (or a non-MIME body) becomes quoted-printable (text) or base64 (anything
 * else), multipart and message/rfc822 containers are walked, and 8-bit unstructured header
 * fields become RFC 2047 encoded-words. Decoding gives back every part's bytes. Null when the
 * message cannot be downgraded: 8-bit bytes in a structured header field (an address or a
 * parameter), in a part already declared base64 or quoted-printable, or in a multipart body
 * without its boundary. A 7-bit message is returned unchanged.
 */
export function downgradeTo7Bit(message: Uint8Array): Buffer | null {
  const raw = Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString('latin1');
  const out = entity(raw, true, 0);
  return out === null ? null : Buffer.from(out, 'latin1');
}
