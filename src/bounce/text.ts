/**
 * Reading the human-readable part of a bounce: the many non-standard formats (qmail, Exim, Sendmail
 * transcripts, Exchange, webmail providers) put the failed address and the remote reply in prose.
 */
import { addressesIn, embeddedOriginal } from './arf.js';
import { isAddress } from './dsn.js';
import { decodeWords, flatten, header, parseHeaderBlock, partText, type MimePart } from './mime.js';

/** Where the copy of the original message starts in a single-part bounce. */
const ORIGINAL_MARKERS: readonly RegExp[] = [
  /^[ \t]*-{2,}[ \t]*(?:this is a copy of|below this line is a copy|original message|the original message|copy of the original|original mail|message header follows|returned message|undelivered message follows|unsent message below|forwarded message|start of the original|headers of the original|original message headers)/im,
  /^[ \t]*(?:original message headers|-+ ?original message ?-+|--- ?the header of the original message|content-type: message\/rfc822|your message reads \(in part\)|the message you sent follows|original message follows|message headers follow|included is a copy of the message header|the header of the original message)/im,
  /^[ \t]*(?:return-path|received|x-original-to|dkim-signature|message-id|mime-version):[^\n]*\n(?:(?:[ \t][^\n]*|[!-9;-~]{1,76}:[^\n]*)\n){2}/im,
];

const BOUNCE_FROM =
  /mailer[-_ ]?daemon|post_?master|mail ?delivery|mail ?administrator|^(?:root|mmdf|double-bounce|bounces?)@|deliverysystem|noreply-dmarc|\bsystem administrator\b|mailer@|mail-daemon/i;
const BOUNCE_SUBJECT =
  /undeliver|undelivered|delivery (?:status notification|failure|failed|report|notification|has failed|problem)|returned (?:mail|to sender)|failure notice|mail delivery|non[- ]?delivery|could not (?:be )?deliver|delivery (?:delayed|unsuccessful)|not delivered|mail (?:system|could not)|rejected|warning: could not|nicht zustellbar|bounce|error sending|message (?:you sent )?blocked|delayed mail|系统退信|unzustellbar|non remis|no se pudo entregar|permanent error|delivery notification|returned mail|mail failure|mensaje no entregado/i;

/** Addresses that identify the bounce machinery rather than a failed recipient. */
const NOT_RECIPIENT =
  /^(?:mailer-daemon|postmaster|double-bounce|root|abuse|noreply|no-reply|bounce|bounces|mailerdaemon)@/i;

export interface TextRecipient {
  readonly recipient: string;
  /** The paragraph about this recipient (its error lines), whitespace kept. */
  readonly segment: string;
}

/** The human-readable report: top-level text parts outside any embedded original, cut before the copy. */
export function reportText(root: MimePart): string {
  const original = embeddedOriginal(root);
  const inOriginal = new Set(original ? flatten(original) : []);
  const texts: string[] = [];
  const leaves = flatten(root).filter((p) => p.children.length === 0 && !inOriginal.has(p));
  const plain = leaves.filter(
    (p) => p.type === 'text/plain' && !/attachment/i.test(header(p, 'content-disposition') ?? ''),
  );
  const chosen = plain.length > 0 ? plain : leaves.filter((p) => p.type === 'text/html');
  for (const p of chosen) texts.push(partText(p).slice(0, MAX_REPORT_CHARS));
  return cutOriginal(texts.join('\n').slice(0, MAX_REPORT_CHARS));
}

/** Drops the copy of the original message that single-part bounces append. */
export function cutOriginal(text: string): string {
  let end = text.length;
  for (const re of ORIGINAL_MARKERS) {
    const m = re.exec(text);
    if (m && m.index > 0 && m.index < end) end = m.index;
  }
  return text.slice(0, end);
}

/** The copy of the original message's headers inside a single-part bounce, if any. */
export function inlineOriginalHeaders(root: MimePart): Map<string, string[]> | null {
  const leaf = flatten(root).find((p) => p.children.length === 0 && p.type === 'text/plain');
  if (!leaf) return null;
  const text = partText(leaf).slice(0, MAX_REPORT_CHARS);
  const cut = cutOriginal(text).length;
  if (cut >= text.length) return null;
  const rest = text
    .slice(cut)
    .replace(/^[^\n]*\n/, '')
    .replace(/^\s*\n/, '');
  const headers = parseHeaderBlock(rest.split(/\r?\n\r?\n/)[0] ?? '');
  return headers.size > 0 ? headers : null;
}

/** Whether the message presents itself as a bounce (sender, subject, or bounce-only headers). */
export function looksLikeBounce(root: MimePart, text: string): boolean {
  const from = decodeWords(header(root, 'from') ?? '');
  const subject = decodeWords(header(root, 'subject') ?? '');
  if (header(root, 'x-failed-recipients')) return true;
  if (root.type === 'multipart/report') return true;
  if (BOUNCE_FROM.test(from)) return true;
  if (BOUNCE_SUBJECT.test(subject)) return true;
  return /(?:could not be delivered|was not delivered|delivery (?:has )?failed|permanent(?:ly)? (?:error|fatal)|undeliverable|is undeliverable|(?:rejected|bounced) (?:your|the) message|following (?:address|recipient)e?s? (?:had|failed)|delivery to the following recipient)/i.test(
    text,
  );
}

/** Addresses that belong to the exchange itself: the bounce's author and addressee, the original sender. */
function ownAddresses(
  root: MimePart,
  originalHeaders: ReadonlyMap<string, readonly string[]> | null,
): Set<string> {
  const own = new Set<string>();
  for (const name of ['from', 'to', 'return-path', 'reply-to', 'sender', 'delivered-to']) {
    for (const a of addressesIn(header(root, name))) own.add(a);
  }
  for (const name of ['from', 'return-path', 'sender', 'reply-to']) {
    for (const v of originalHeaders?.get(name) ?? []) for (const a of addressesIn(v)) own.add(a);
  }
  return own;
}

// Quantifiers are bounded so that a long run of address characters without an "@" stays linear.
const ADDRESS =
  /[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){1,10}/g;

/** Characters of report text examined: real reports are a few kilobytes; this bounds the regex work. */
const MAX_REPORT_CHARS = 64 * 1024;

/**
 * Failed recipients named in the report text, each with the text that concerns it. The bounce's own
 * parties and the original sender are not recipients; X-Failed-Recipients, when present, is the list.
 */
export function textRecipients(
  root: MimePart,
  text: string,
  originalHeaders: ReadonlyMap<string, readonly string[]> | null,
): TextRecipient[] {
  const declared = (header(root, 'x-failed-recipients') ?? '')
    .split(/[,\s]+/)
    .map((a) => a.replace(/^<|>$/g, '').toLowerCase())
    .filter(isAddress);
  const own = ownAddresses(root, originalHeaders);
  const hits: { addr: string; index: number }[] = [];
  for (const m of text.matchAll(ADDRESS)) {
    const addr = m[0].toLowerCase().replace(/\.$/, '');
    if (/\.(?:png|jpe?g|gif)$/.test(addr)) continue;
    hits.push({ addr, index: m.index });
  }
  // An address given as RCPT TO in a transcript or summary is the recipient, whatever else is quoted.
  const rcpt = [...text.matchAll(/rcpt to:\s*<?([^\s<>]+@[^\s<>]+?)>?(?:\s|$)/gi)]
    .map((m) => m[1]!.toLowerCase())
    .filter(isAddress);
  const candidates = rcpt.length > 0 ? rcpt : hits.map((h) => h.addr);
  let names =
    declared.length > 0
      ? declared
      : [...new Set(candidates)].filter((a) => !own.has(a) && !NOT_RECIPIENT.test(a));
  if (names.length === 0) {
    const fallback = [...new Set(hits.map((h) => h.addr))].filter(
      (a) => !NOT_RECIPIENT.test(a) && !ownSender(a, root, originalHeaders),
    );
    names = fallback.slice(0, 1);
  }
  names = names.slice(0, 100);
  const nameSet = new Set(names);
  const named = hits.filter((h) => nameSet.has(h.addr));
  return names.map((recipient) => ({ recipient, segment: segmentFor(recipient, names.length, named, text) }));
}

function ownSender(
  addr: string,
  root: MimePart,
  originalHeaders: ReadonlyMap<string, readonly string[]> | null,
): boolean {
  const senders = [
    ...addressesIn(header(root, 'to')),
    ...(originalHeaders?.get('from') ?? []).flatMap((v) => addressesIn(v)),
  ];
  return senders.includes(addr);
}

/**
 * The text after each mention of `recipient`, up to the next mention of another recipient.
 * `named` holds the mentions of all recipients, in text order.
 */
function segmentFor(
  recipient: string,
  count: number,
  named: readonly { addr: string; index: number }[],
  text: string,
): string {
  if (count === 1) {
    const first = named.find((h) => h.addr === recipient);
    return first ? text.slice(lineStart(text, first.index)) : text;
  }
  const parts: string[] = [];
  named.forEach((h, i) => {
    if (h.addr !== recipient) return;
    let next: { index: number } | undefined;
    for (let j = i + 1; j < named.length; j++) {
      if (named[j]!.addr !== recipient) {
        next = named[j];
        break;
      }
    }
    parts.push(
      text.slice(
        lineStart(text, h.index),
        next ? lineStart(text, next.index) : Math.min(text.length, h.index + 2000),
      ),
    );
  });
  return parts.join('\n');
}

function lineStart(text: string, index: number): number {
  const nl = text.lastIndexOf('\n', index);
  return nl < 0 ? 0 : nl + 1;
}

/** Lines of a segment that carry a remote server's reply, e.g. `host x said: 550 5.1.1 …`. */
export function replyLines(segment: string): string {
  const out: string[] = [];
  const lines = segment.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (
      /(?:^|[\s:;'(<"])[245]\d\d(?:[ :-]|$)/.test(line) ||
      /said:|remote server returned|diagnostic|reason:|error:/i.test(line)
    ) {
      out.push(line);
      let j = i + 1;
      while (j < lines.length && /^\s+\S/.test(lines[j]!) && !/@/.test(lines[j]!.slice(0, 3)) && j - i < 6)
        out.push(lines[j++]!);
    }
  }
  return out.join('\n');
}
