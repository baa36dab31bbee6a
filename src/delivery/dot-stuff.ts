const CR = 13;
const LF = 10;
const DOT = 46;
const INSERT_DOT = Buffer.from('.');
const INSERT_CR = Buffer.from('\r');
const INSERT_LF = Buffer.from('\n');
const END_AFTER_LINE = Buffer.from('.\r\n');
const END_MID_LINE = Buffer.from('\r\n.\r\n');

/**
 * The message as DATA carries it (RFC 5321 §4.5.2), as pieces to write in order: views into
 * `message` (no copy) and the few bytes inserted between them. A '.' that starts a line (the
 * first byte, or after a line break) is doubled; a bare CR or bare LF becomes CRLF, so that no
 * line break the receiver might read differently from us survives (SMTP smuggling).
 * {@link endOfData} follows it.
 */
export function* dotStuffed(message: Uint8Array): Generator<Uint8Array> {
  const n = message.length;
  let from = 0;
  if (n > 0 && message[0] === DOT) yield INSERT_DOT;
  let nextCr = message.indexOf(CR);
  let nextLf = message.indexOf(LF);
  while (nextCr !== -1 || nextLf !== -1) {
    let lineStart: number;
    if (nextCr !== -1 && (nextLf === -1 || nextCr < nextLf)) {
      const i = nextCr;
      if (nextLf === i + 1) {
        lineStart = i + 2;
        nextLf = message.indexOf(LF, lineStart);
      } else {
        if (i + 1 > from) yield message.subarray(from, i + 1);
        yield INSERT_LF;
        from = i + 1;
        lineStart = i + 1;
      }
      nextCr = message.indexOf(CR, i + 1);
    } else {
      const i = nextLf;
      if (i > from) yield message.subarray(from, i);
      yield INSERT_CR;
      from = i;
      lineStart = i + 1;
      nextLf = message.indexOf(LF, lineStart);
    }
    if (lineStart < n && message[lineStart] === DOT) {
      if (lineStart > from) yield message.subarray(from, lineStart);
      yield INSERT_DOT;
      from = lineStart;
    }
  }
  if (n > from) yield message.subarray(from, n);
}

/** The final dot on a line of its own, after what {@link dotStuffed} made of `message`. */
export function endOfData(message: Uint8Array): Uint8Array {
  const last = message[message.length - 1];
  return last === LF || last === CR ? END_AFTER_LINE : END_MID_LINE;
}
