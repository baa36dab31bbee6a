/** One complete server reply. */
export interface WireReply {
  /** The code of its first line. */
  readonly code: number;
  /** Its lines, `250-`/`250 ` prefixes kept, joined by LF: the form {@link parseReply} reads. */
  readonly raw: string;
}

/** Longest reply line accepted (RFC 5321 §4.5.3.1.5 allows 512; servers send longer EHLO lines). */
export const MAX_REPLY_LINE = 4096;
/** Most lines one multi-line reply may have. */
export const MAX_REPLY_LINES = 256;

/**
 * Splits what the server sends into replies as the bytes arrive. Holds at most one unfinished
 * line and one unfinished reply, both bounded, so a hostile server cannot make it buffer
 * without limit; a violation is reported and the caller drops the connection.
 */
export class ReplyReader {
  #partial: Buffer | null = null;
  #lines: string[] = [];
  #code = 0;

  /**
   * Feeds one chunk. Calls `onReply` for each reply it completes, in order, and stops early when
   * `onReply` returns false. Returns a description of the protocol violation, or null.
   */
  feed(chunk: Buffer, onReply: (reply: WireReply) => boolean): string | null {
    let data = chunk;
    if (this.#partial !== null) {
      data = Buffer.concat([this.#partial, chunk]);
      this.#partial = null;
    }
    let pos = 0;
    while (pos < data.length) {
      const lf = data.indexOf(10, pos);
      if (lf === -1) {
        if (data.length - pos > MAX_REPLY_LINE) return 'reply line too long';
        this.#partial = Buffer.from(data.subarray(pos));
        return null;
      }
      if (lf - pos > MAX_REPLY_LINE) return 'reply line too long';
      const end = lf > pos && data[lf - 1] === 13 ? lf - 1 : lf;
      const line = data.toString('utf8', pos, end);
      pos = lf + 1;
      if (line.length === 0) continue;
      const code = codeOf(line);
      if (code === null) return `malformed reply line: ${line.slice(0, 64)}`;
      if (this.#lines.length === 0) this.#code = code;
      this.#lines.push(line);
      if (line.charCodeAt(3) === 0x2d) {
        if (this.#lines.length >= MAX_REPLY_LINES) return 'reply has too many lines';
        continue;
      }
      const reply = { code: this.#code, raw: this.#lines.length === 1 ? line : this.#lines.join('\n') };
      this.#lines = [];
      if (!onReply(reply)) return null;
    }
    return null;
  }
}

/** The code of a reply line ("250", "250-…", "250 …"), or null when it is not one. */
function codeOf(line: string): number | null {
  const a = line.charCodeAt(0) - 48;
  const b = line.charCodeAt(1) - 48;
  const c = line.charCodeAt(2) - 48;
  if (a < 2 || a > 5 || b < 0 || b > 9 || c < 0 || c > 9) return null;
  const sep = line.charCodeAt(3);
  if (line.length > 3 && sep !== 0x20 && sep !== 0x2d) return null;
  return a * 100 + b * 10 + c;
}
