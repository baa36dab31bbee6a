import { createHash } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';

/**
 * RFC 6376 §3.4.2 and §3.4.4 "relaxed" canonicalization, on bytes.
 *
 * Bodies stay Buffers from end to end: 8-bit and non-UTF-8 bytes pass through untouched. Header
 * text is handled as latin1 strings, which map every byte to one UTF-16 unit and back, so raw
 * UTF-8 header values (RFC 6532) survive too. Input is expected to use CRLF line endings, which
 * the submission listener enforces; a bare CR or LF is treated as an ordinary byte.
 */

const SP = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);

/** One header field of a message, as found in its bytes. */
export interface RawHeaderField {
  /** Field name with ASCII letters lower-cased, for matching against `h=`. */
  readonly name: string;
  /** The whole field (folded continuation lines included) without its final CRLF, as latin1. */
  readonly text: string;
}

/** A message split at the blank line that ends the header block. */
export interface SplitMessage {
  /** Fields in message order (top first). */
  readonly headers: readonly RawHeaderField[];
  /** Everything after the blank line; a view into the input, not a copy. */
  readonly body: Buffer;
}

/**
 * Splits a message into header fields and body. A message with no blank line is all header and
 * has an empty body; lines that are neither a field nor a continuation are skipped, since no
 * `h=` name can select them.
 */
export function splitMessage(message: Buffer): SplitMessage {
  let headerEnd: number;
  let bodyStart: number;
  if (message[0] === CR && message[1] === LF) {
    headerEnd = 0;
    bodyStart = 2;
  } else {
    const blank = message.indexOf('\r\n\r\n');
    headerEnd = blank === -1 ? message.length : blank + 2;
    bodyStart = blank === -1 ? message.length : blank + 4;
  }
  const block = message.toString('latin1', 0, headerEnd);
  const headers: RawHeaderField[] = [];
  let current: string | null = null;
  const flush = (): void => {
    if (current === null) return;
    const colon = current.indexOf(':');
    if (colon > 0)
      headers.push({ name: lowerAscii(current.slice(0, colon).replace(/[ \t]+$/, '')), text: current });
    current = null;
  };
  for (const line of block.split('\r\n')) {
    const first = line.charCodeAt(0);
    if ((first === SP || first === TAB) && current !== null) {
      current += `\r\n${line}`;
    } else {
      flush();
      current = line;
    }
  }
  flush();
  return { headers, body: message.subarray(bodyStart) };
}

/**
 * Relaxed header canonicalization of one field (latin1 text, with or without its final CRLF):
 * lower-case name, unfolded value, runs of SP/HTAB reduced to one SP, no WSP around the colon or
 * at the end. Returns `name:value` followed by CRLF.
 */
export function canonicalizeHeaderRelaxed(field: string): string {
  const colon = field.indexOf(':');
  const name = lowerAscii(field.slice(0, colon).replace(/[ \t]+$/, ''));
  // Only SP and HTAB are WSP here; String#trim would also eat NBSP (0xA0) and other latin1 bytes.
  const value = field
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ /, '')
    .replace(/ $/, '');
  return `${name}:${value}\r\n`;
}

/**
 * Relaxed body canonicalization: WSP runs become one SP, WSP at line ends is dropped, trailing
 * empty lines are dropped, and a non-empty body ends with exactly one CRLF. An empty body stays
 * empty. Synchronous, for tests and diagnostics; signing uses {@link hashBodyRelaxed}.
 */
export function canonicalizeBodyRelaxed(body: Buffer): Buffer {
  let lines = body;
  if (needsRewrite(body)) {
    const out = Buffer.allocUnsafe(body.length);
    lines = out.subarray(0, collapseInto(body, out, 0));
  }
  const chunks = withoutTrailingLines(lines);
  return chunks.length === 0 ? EMPTY : Buffer.concat(chunks);
}

/**
 * SHA-256 of the relaxed canonical body. Works in slices of about `sliceBytes`, cut just after a
 * LF so no whitespace run or CRLF straddles a cut, and yields to the event loop between slices:
 * a 25 MB body costs a few hundred ms of JavaScript, which must not stall other sessions. A body
 * that fits in one slice (the usual case) is done in one go. Bodies with no tab, double space or
 * space before CRLF are hashed as they are, without a copy.
 */
export async function hashBodyRelaxed(body: Buffer, sliceBytes = 256 * 1024): Promise<Buffer> {
  let out: Buffer | null = null;
  let o = 0;
  for (let start = 0; start < body.length;) {
    const cut = start + sliceBytes >= body.length ? -1 : body.indexOf(LF, start + sliceBytes - 1);
    const end = cut === -1 ? body.length : cut + 1;
    const part = body.subarray(start, end);
    if (needsRewrite(part)) {
      if (out === null) {
        out = Buffer.allocUnsafe(body.length);
        o = body.copy(out, 0, 0, start);
      }
      o = collapseInto(part, out, o);
    } else if (out !== null) {
      o += part.copy(out, o);
    }
    start = end;
    if (start < body.length) await setImmediate();
  }
  const hash = createHash('sha256');
  for (const chunk of withoutTrailingLines(out === null ? body : out.subarray(0, o))) {
    for (let i = 0; i < chunk.length; i += sliceBytes) {
      if (i > 0) await setImmediate();
      hash.update(chunk.subarray(i, i + sliceBytes));
    }
  }
  return hash.digest();
}

function needsRewrite(part: Buffer): boolean {
  return part.indexOf(TAB) !== -1 || part.indexOf('  ') !== -1 || part.indexOf(' \r\n') !== -1;
}

/** Writes `src` with WSP runs collapsed and line-end WSP removed into `out` at `o`; returns the new end. */
function collapseInto(src: Buffer, out: Buffer, o: number): number {
  let pendingSpace = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === SP || c === TAB) {
      pendingSpace = true;
    } else if (c === CR && src[i + 1] === LF) {
      pendingSpace = false;
      out[o++] = CR;
      out[o++] = LF;
      i++;
    } else {
      if (pendingSpace) out[o++] = SP;
      pendingSpace = false;
      out[o++] = c;
    }
  }
  return o;
}

/** Drops WSP ending an unterminated last line and all trailing empty lines; ensures a final CRLF. */
function withoutTrailingLines(lines: Buffer): Buffer[] {
  let end = lines.length;
  while (end > 0 && (lines[end - 1] === SP || lines[end - 1] === TAB)) end--;
  while (end >= 2 && lines[end - 2] === CR && lines[end - 1] === LF) {
    if (end === 2 || (lines[end - 4] === CR && lines[end - 3] === LF)) end -= 2;
    else break;
  }
  if (end === 0) return [];
  const kept = lines.subarray(0, end);
  return lines[end - 2] === CR && lines[end - 1] === LF ? [kept] : [kept, CRLF];
}

function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}
