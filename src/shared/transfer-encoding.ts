/**
 * MIME content-transfer-encodings that make 8-bit content 7-bit clean (RFC 2045 §6.7, §6.8)
 * and RFC 2047 encoded-words for header text. Strings here hold bytes as latin1 (one char per
 * byte), the form MIME code works on.
 */

const LINE = 76;

/** True when the latin1-held bytes include one above 0x7f. */
export function hasEightBitBytes(bytes: string): boolean {
  return /[^\p{ASCII}]/u.test(bytes);
}

function hex(code: number): string {
  return `=${code.toString(16).toUpperCase().padStart(2, '0')}`;
}

/**
 * Quoted-printable of latin1-held bytes. CRLF pairs stay line breaks; a lone CR or LF, `=`,
 * controls, bytes above 0x7e and whitespace at the end of a line are escaped. Every line has
 * at most 76 characters (soft breaks end in `=`), so decoding gives back the bytes exactly.
 */
export function encodeQuotedPrintable(bytes: string): string {
  return bytes
    .split('\r\n')
    .map((line) => {
      let out = '';
      let width = 0;
      for (let i = 0; i < line.length; i++) {
        const code = line.charCodeAt(i);
        const last = i === line.length - 1;
        const literal =
          (code >= 0x21 && code <= 0x7e && code !== 0x3d) || ((code === 0x20 || code === 0x09) && !last);
        const token = literal ? line[i]! : hex(code);
        // Keep room for the "=" of a soft break unless this token ends the line.
        if (width + token.length > (last ? LINE : LINE - 1)) {
          out += '=\r\n';
          width = 0;
        }
        out += token;
        width += token.length;
      }
      return out;
    })
    .join('\r\n');
}

/** Base64 of latin1-held bytes in CRLF-terminated lines of 76 characters. */
export function encodeBase64Lines(bytes: string): string {
  const b64 = Buffer.from(bytes, 'latin1').toString('base64');
  let out = '';
  for (let i = 0; i < b64.length; i += LINE) out += `${b64.slice(i, i + LINE)}\r\n`;
  return out;
}

/** Bytes of UTF-8 per encoded-word: 45 bytes are 60 base64 characters, 72 with `=?UTF-8?B?…?=`. */
const WORD_BYTES = 45;

/**
 * The text as RFC 2047 `=?UTF-8?B?…?=` words, one per folded line after the first, never
 * splitting a character. For unstructured header fields (Subject, Comments); decoders drop the
 * folding whitespace between adjacent encoded-words, so the text reads back unchanged.
 */
export function encodeWords(text: string): string {
  const words: string[] = [];
  let chunk: string[] = [];
  let size = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (size + n > WORD_BYTES && chunk.length > 0) {
      words.push(chunk.join(''));
      chunk = [];
      size = 0;
    }
    chunk.push(ch);
    size += n;
  }
  if (chunk.length > 0) words.push(chunk.join(''));
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join('\r\n ');
}
