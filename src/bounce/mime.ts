/**
 * A small, bounded MIME walker. Bounces are read from untrusted senders, so every dimension is capped:
 * input size, nesting depth, number of parts and decoded text per part. Nothing here throws on bad input;
 * a part that cannot be understood is kept as opaque text.
 */

/** Upper bounds applied while walking a message. */
export interface MimeLimits {
  /** Bytes of the raw message considered at all; the rest is ignored. */
  readonly maxInputBytes: number;
  /** Deepest multipart / message/rfc822 nesting followed. */
  readonly maxDepth: number;
  /** Parts created in total across the whole tree. */
  readonly maxParts: number;
  /** Characters of decoded text kept per part. */
  readonly maxTextChars: number;
}

export const DEFAULT_LIMITS: MimeLimits = {
  maxInputBytes: 8 * 1024 * 1024,
  maxDepth: 12,
  maxParts: 200,
  maxTextChars: 512 * 1024,
};

export interface MimePart {
  /** Lowercased header name → values in order of appearance (unfolded, raw). */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** Lowercased `type/subtype`; `text/plain` when absent or unparsable. */
  readonly type: string;
  readonly params: ReadonlyMap<string, string>;
  /** The body as a latin1 string of the raw bytes (still transfer-encoded). */
  readonly rawBody: string;
  readonly children: readonly MimePart[];
}

interface WalkState {
  parts: number;
  readonly limits: MimeLimits;
}

/** Splits a header block from its body; a block without a blank line is all headers. */
function splitHead(raw: string): { head: string; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  if (!m) return { head: raw, body: '' };
  return { head: raw.slice(0, m.index), body: raw.slice(m.index + m[0].length) };
}

/** Parses an RFC 5322 header block into lowercased names; stray lines are skipped. */
export function parseHeaderBlock(head: string): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  const lines = head.split(/\r?\n/);
  let name: string | null = null;
  let value = '';
  const flush = (): void => {
    if (name === null) return;
    const list = headers.get(name) ?? [];
    list.push(value.trim());
    headers.set(name, list);
  };
  for (const line of lines.slice(0, 2000)) {
    if (/^[ \t]/.test(line) && name !== null) {
      value += ` ${line.trim()}`;
      continue;
    }
    const m = /^([!-9;-~]{1,76})[ \t]*:(.*)$/.exec(line);
    // A parameter wrapped onto an unindented line (`boundary="…"`) still belongs to its header.
    if (!m && name !== null && /^[\w*.-]+=\S/.test(line)) {
      value += ` ${line.trim()}`;
      continue;
    }
    flush();
    name = m ? m[1]!.toLowerCase() : null;
    value = m ? m[2]! : '';
  }
  flush();
  return headers;
}

/** Parses `type/subtype; a=b; c="d"` leniently. */
export function parseContentType(value: string | undefined): { type: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  if (!value) return { type: 'text/plain', params };
  const [first, ...rest] = value.split(';');
  const type = (first ?? '').trim().toLowerCase();
  const re = /([\w*.-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;\s]+)/g;
  const tail = rest.join(';');
  for (let m = re.exec(tail); m; m = re.exec(tail)) {
    params.set(m[1]!.toLowerCase(), m[3] ?? m[2]!);
  }
  return { type: /^[\w.+-]+\/[\w.+-]+$/.test(type) ? type : 'text/plain', params };
}

/** Splits a multipart body on its boundary; the preamble and epilogue are dropped. */
function splitMultipart(body: string, boundary: string, max: number): string[] {
  if (boundary === '') return [];
  const delim = `--${boundary}`;
  const out: string[] = [];
  let pos = body.startsWith(delim) ? 0 : body.indexOf(`\n${delim}`);
  if (pos < 0) return out;
  if (pos > 0) pos += 1;
  while (pos >= 0 && out.length < max) {
    const after = pos + delim.length;
    if (body.startsWith('--', after)) break;
    const lineEnd = body.indexOf('\n', after);
    if (lineEnd < 0) break;
    const next = body.indexOf(`\n${delim}`, lineEnd);
    const end = next < 0 ? body.length : next;
    out.push(body.slice(lineEnd + 1, end).replace(/\r$/, ''));
    pos = next < 0 ? -1 : next + 1;
  }
  return out;
}

function walk(raw: string, depth: number, state: WalkState, headersOnly = false): MimePart {
  state.parts++;
  const { head, body } = headersOnly ? { head: raw, body: '' } : splitHead(raw);
  const headers = parseHeaderBlock(head);
  const { type, params } = parseContentType(headers.get('content-type')?.[0]);
  const children: MimePart[] = [];
  const room = (): boolean => depth < state.limits.maxDepth && state.parts < state.limits.maxParts;
  if (type.startsWith('multipart/') && room()) {
    let chunks = splitMultipart(body, params.get('boundary') ?? '', state.limits.maxParts);
    // Some MTAs declare one boundary and use another; fall back to the first delimiter-like line.
    const guessed = chunks.length === 0 ? /^--(-*[^\s-]\S{5,69})[ \t]*\r?$/m.exec(body)?.[1] : undefined;
    if (guessed) chunks = splitMultipart(body, guessed, state.limits.maxParts);
    for (const chunk of chunks) {
      if (!room()) break;
      children.push(walk(chunk, depth + 1, state));
    }
  } else if ((type === 'message/rfc822' || type === 'message/global') && room()) {
    children.push(
      walk(decodeTransfer(body, headers.get('content-transfer-encoding')?.[0]), depth + 1, state),
    );
  } else if (type === 'text/rfc822-headers' || type === 'text/global-headers') {
    // Returned headers with 8-bit bytes come quoted-printable or base64 in a 7-bit report.
    const cte = headers.get('content-transfer-encoding')?.[0];
    if (room()) children.push(walk(decodeTransfer(body, cte), depth + 1, state, true));
  }
  return { headers, type, params, rawBody: body, children };
}

/** Parses a raw message into a bounded MIME tree. Never throws. */
export function parseMime(raw: Buffer, limits: MimeLimits = DEFAULT_LIMITS): MimePart {
  const slice = raw.length > limits.maxInputBytes ? raw.subarray(0, limits.maxInputBytes) : raw;
  return walk(slice.toString('latin1'), 0, { parts: 0, limits });
}

/** Undoes base64 / quoted-printable, returning latin1 bytes; unknown encodings pass through. */
export function decodeTransfer(body: string, encoding: string | undefined): string {
  const enc = (encoding ?? '').trim().toLowerCase();
  if (enc === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('latin1');
  if (enc === 'quoted-printable') {
    return body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
  return body;
}

/** Turns latin1-held bytes into text using a declared charset; falls back to UTF-8, then latin1. */
export function decodeCharset(bytes: string, charset: string | undefined): string {
  const buf = Buffer.from(bytes, 'latin1');
  const label = (charset ?? 'utf-8').trim().toLowerCase();
  try {
    return new TextDecoder(label === 'us-ascii' ? 'utf-8' : label).decode(buf);
  } catch {
    return buf.toString('utf8');
  }
}

/** The decoded text of a leaf part, capped at the per-part limit. */
export function partText(part: MimePart, limits: MimeLimits = DEFAULT_LIMITS): string {
  const raw =
    part.rawBody.length > limits.maxTextChars * 4
      ? part.rawBody.slice(0, limits.maxTextChars * 4)
      : part.rawBody;
  const bytes = decodeTransfer(raw, part.headers.get('content-transfer-encoding')?.[0]);
  let text = decodeCharset(bytes, part.params.get('charset'));
  if (part.type === 'text/html') text = htmlToText(text);
  return text.length > limits.maxTextChars ? text.slice(0, limits.maxTextChars) : text;
}

function htmlToText(html: string): string {
  return html
    .replace(/<br\s*\/?>|<\/(p|div|tr|li|h\d)>/gi, '\n')
    .replace(/<[^>]{0,2000}>/g, ' ')
    .replace(/&nbsp;/gi, ' ')
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/&quot;/gi, '"')
    .replace(/&#39;|&apos;/gi, "'")
    .replace(/&amp;/gi, '&')
    .replace(/[ \t]+/g, ' ');
}

/** Depth-first list of every part, the root first. */
export function flatten(root: MimePart): MimePart[] {
  const out: MimePart[] = [];
  const stack: MimePart[] = [root];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    for (let i = p.children.length - 1; i >= 0; i--) stack.push(p.children[i]!);
  }
  return out;
}

/** First value of a header, or undefined. */
export function header(part: MimePart, name: string): string | undefined {
  return part.headers.get(name)?.[0];
}

/** Decodes RFC 2047 encoded words (`=?charset?B|Q?…?=`) in a header value. */
export function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, '$1')
    .replace(
      /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g,
      (_m, cs: string, enc: string, data: string) => {
        const bytes =
          enc.toUpperCase() === 'B'
            ? Buffer.from(data, 'base64').toString('latin1')
            : data
                .replace(/_/g, ' ')
                .replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16)));
        return decodeCharset(bytes, cs);
      },
    );
}
