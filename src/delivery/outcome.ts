import type { SmtpReply } from '../shared/index.js';

/** What happened to one recipient in one delivery attempt. */
export type OutcomeKind = 'delivered' | 'deferred' | 'failed';

/**
 * The result of one attempt for one recipient. A value, never an exception (STYLE §5).
 *
 * - `reply` is the remote server's reply when there was one, otherwise a reply Petrel made up
 *   for the local condition (connection refused, timeout, DNS failure, TLS policy, …); its text
 *   is sanitized (one line, printable, at most {@link MAX_REPLY_TEXT} characters).
 * - `mx` is the host name the reply came from (or the attempt was for), null when no host was
 *   reached (DNS failures).
 */
export interface DeliveryOutcome {
  readonly kind: OutcomeKind;
  readonly reply: SmtpReply;
  readonly mx: string | null;
}

/** An outcome that did not deliver: what DNS and connection set-up return. */
export type FailureOutcome = DeliveryOutcome & { readonly kind: 'deferred' | 'failed' };

/** Longest reply text kept; remote servers may send kilobytes of text. */
export const MAX_REPLY_TEXT = 512;

/**
 * The one place where a reply code becomes an outcome kind: 2xx delivered, 5xx failed,
 * everything else (4xx, and nonsense such as 3xx at the end of DATA) deferred, so that an
 * unexpected reply never ends a recipient for good.
 */
export function kindOfReply(code: number): OutcomeKind {
  if (code >= 200 && code < 300) return 'delivered';
  if (code >= 500 && code < 600) return 'failed';
  return 'deferred';
}

/** Builds an outcome from a reply, with the kind given by {@link kindOfReply}. */
export function outcomeOf(reply: SmtpReply, mx: string | null): DeliveryOutcome {
  return { kind: kindOfReply(reply.code), reply, mx };
}

/** A reply made up by Petrel for a local condition; its kind follows from the code. */
export function localOutcome(
  code: number,
  enhanced: string,
  text: string,
  mx: string | null,
): DeliveryOutcome {
  return outcomeOf({ code, enhanced, text: sanitizeReplyText(text) }, mx);
}

/** {@link localOutcome} for the transient and permanent failures DNS and set-up report. */
export function localFailure(
  code: number,
  enhanced: string,
  text: string,
  mx: string | null,
): FailureOutcome {
  const outcome = localOutcome(code, enhanced, text, mx);
  if (outcome.kind === 'delivered') throw new RangeError(`localFailure with a success code ${code}`);
  return outcome as FailureOutcome;
}

/**
 * Strips everything but printable text: remote replies end up in DSNs, logs and the CLI, and
 * a CR/LF in them could inject header lines (Haraka bounce_injection).
 */
export function sanitizeReplyText(text: string): string {
  let flat = '';
  for (const ch of text) flat += isControl(ch.codePointAt(0)!) ? ' ' : ch;
  flat = flat.replace(/ {2,}/g, ' ').trim();
  if (flat.length <= MAX_REPLY_TEXT) return flat;
  return flat.slice(0, MAX_REPLY_TEXT);
}

/** C0, DEL, C1 and the Unicode line/paragraph separators. */
function isControl(c: number): boolean {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/**
 * Parses a raw reply as the reply reader hands it (lines joined by LF, each still carrying its
 * `250-`/`250 ` prefix). The enhanced code is taken from the first line and only when its
 * class matches the basic code (RFC 3463 §2); repeated enhanced codes on later lines are dropped.
 */
export function parseReply(raw: string): SmtpReply | null {
  const lines = raw.split(/\r?\n/).filter((l) => l.length > 0);
  const first = lines[0];
  if (first === undefined) return null;
  const m = /^([2-5]\d\d)(?:[ -]|$)/.exec(first);
  if (!m) return null;
  const code = Number(m[1]);
  let enhanced = '';
  const texts: string[] = [];
  for (const [i, line] of lines.entries()) {
    let rest = line.replace(/^\d{3}[ -]?/, '');
    const em = ENHANCED.exec(rest);
    if (em) {
      const value = `${em[1]}.${em[2]}.${em[3]}`;
      if (i === 0 && em[1] === String(code)[0]) enhanced = value;
      if (value === enhanced || i === 0) rest = rest.slice(em[0].length);
    }
    texts.push(rest);
  }
  return { code, enhanced, text: sanitizeReplyText(texts.join(' ')) };
}
