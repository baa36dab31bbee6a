import {
  decodeCharset,
  decodeTransfer,
  decodeWords,
  flatten,
  parseMime,
  type MimeLimits,
} from '../bounce/index.js';
import { canonicalAddress } from '../shared/index.js';

// What counts as a message mentioning an address, for erasure and export: the address as a whole
// token in the message once decoded (RFC 2047 words in every header of every part, each part's
// body per its Content-Transfer-Encoding and charset), or in its raw bytes, in any letter case.

/** The walker's bounds, sized for a whole submitted message rather than for a bounce. */
const LIMITS: MimeLimits = {
  maxInputBytes: 64 * 1024 * 1024,
  maxDepth: 12,
  maxParts: 1000,
  maxTextChars: Number.MAX_SAFE_INTEGER,
};

/** Characters of a dot-atom local part (RFC 5322 atext and dots); non-ASCII for SMTPUTF8. */
const LOCAL = /[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\u0080-\uffff-]/;
const DOMAIN = /[A-Za-z0-9.\u0080-\uffff-]/;
const ALNUM = /[A-Za-z0-9\u0080-\uffff]/;
/** Shorter forms tried on either side of one `@`: enough for `mailto:`, `"…"`, `/path/a@b.c`. */
const MAX_FORMS = 4;

/**
 * Every address the message mentions, in canonical form (see canonicalAddress), each once. An
 * `@` gives the longest address around it and the shorter ones that start after punctuation in
 * the local part (`x/alice@…` mentions alice@…) or end at a dot of the domain (`alice@a.b.evil`
 * mentions alice@a.b), never ones cut inside a word (`xalice@…` does not mention alice@…).
 */
export function mentionedAddresses(message: Buffer): string[] {
  const found = new Set<string>();
  collect(message.toString('utf8'), found);
  for (const part of flatten(parseMime(message, LIMITS))) {
    for (const values of part.headers.values()) for (const v of values) collect(decodeWords(v), found);
    if (part.children.length > 0) continue;
    const cte = part.headers.get('content-transfer-encoding')?.[0];
    const bytes = decodeTransfer(part.rawBody, cte);
    collect(decodeCharset(bytes, part.params.get('charset')), found);
    // A part whose declared charset is wrong still shows its ASCII addresses this way.
    if (/^\s*(base64|quoted-printable)\s*$/i.test(cte ?? '')) collect(bytes, found);
  }
  return [...found];
}

/** True when the message mentions the address (canonical form) as mentionedAddresses counts. */
export function mentionsAddress(message: Buffer, canonical: string): boolean {
  return mentionedAddresses(message).includes(canonical);
}

function collect(text: string, into: Set<string>): void {
  for (let at = text.indexOf('@'); at !== -1; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > 0 && LOCAL.test(text[start - 1]!)) start--;
    let end = at + 1;
    while (end < text.length && DOMAIN.test(text[end]!)) end++;
    if (start === at || end === at + 1) continue;
    const locals = localForms(text.slice(start, at));
    const domains = domainForms(text.slice(at + 1, end));
    for (const l of locals) {
      for (const d of domains) {
        const canonical = canonicalAddress(`${l}@${d}`);
        if (canonical) into.add(canonical);
      }
    }
  }
}

function localForms(local: string): string[] {
  const forms = [local];
  for (let i = local.length - 1; i > 0 && forms.length <= MAX_FORMS; i--) {
    if (!ALNUM.test(local[i - 1]!) && ALNUM.test(local[i]!)) forms.push(local.slice(i));
  }
  return forms.map((l) => l.replace(/^\.+/, '')).filter((l) => l !== '');
}

function domainForms(domain: string): string[] {
  const whole = domain.replace(/[.-]+$/, '');
  const forms = [whole];
  for (
    let dot = whole.indexOf('.');
    dot !== -1 && forms.length <= MAX_FORMS;
    dot = whole.indexOf('.', dot + 1)
  ) {
    const prefix = whole.slice(0, dot);
    if (prefix.includes('.')) forms.push(prefix);
  }
  return forms;
}
