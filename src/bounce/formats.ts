/**
 * What Petrel knows about particular MTAs and mail providers, as data: how each one's bounces are
 * recognised, where they put the failed recipient and the remote server's words, and the codes or
 * phrases with which each one states its reasons. The general rules (rules.ts) read any reply;
 * a format's own table is consulted first, because a provider's wording means what its
 * documentation says, whatever a generic phrase list would make of it.
 *
 * Each format names its source. Formats are tried in table order; all that match a message apply
 * (a Sendmail bounce quoting Gmail's reply is read by both), and the first that finds recipients in
 * the text is the one whose entries are used.
 */
import { isAddress } from './dsn.js';
import { LIST_FORMATS } from './formats/lists.js';
import { MTA_FORMATS } from './formats/mtas.js';
import { PROVIDER_FORMATS } from './formats/providers.js';
import type { BounceFormat, Marker } from './formats/types.js';
import type { BounceReason } from './reason.js';

export type { BounceFormat, FormatCode, Marker, MarkerSource } from './formats/types.js';

/** What a format needs to see of a message to recognise it. */
export interface FormatView {
  header(name: string): string | undefined;
  /** The human-readable report. */
  readonly body: string;
  /** The text of the message/delivery-status parts, empty when there are none. */
  readonly dsn: string;
}

export const FORMATS: readonly BounceFormat[] = [...PROVIDER_FORMATS, ...LIST_FORMATS, ...MTA_FORMATS];

function statusMatches(want: string, status: string | null): boolean {
  if (!status) return false;
  const range = /^(\d\.\d{1,3}\.)(\d{1,3})-(\d{1,3})$/.exec(want);
  if (range) {
    if (!status.startsWith(range[1]!)) return false;
    const detail = Number(status.slice(range[1]!.length));
    return detail >= Number(range[2]) && detail <= Number(range[3]);
  }
  return want.endsWith('.') ? status.startsWith(want) : status === want;
}

/** The formats a message shows the markers of, in table order. */
export function recogniseFormats(
  view: FormatView,
  formats: readonly BounceFormat[] = FORMATS,
): BounceFormat[] {
  const shows = ([source, pattern]: Marker): boolean => {
    const text = source === 'body' ? view.body : source === 'dsn' ? view.dsn : view.header(source);
    return text !== undefined && text !== '' && pattern.test(text);
  };
  return formats.filter((f) => f.markers.some(shows) && (f.requires ?? []).every(shows));
}

/**
 * One line of diagnostic. The continuation lines of a multi-line SMTP reply repeat its code and
 * status (RFC 5321 section 4.2.1); only the first line keeps them, so the text reads as one sentence.
 */
function clean(format: BounceFormat, diag: string | undefined): string | null {
  if (diag === undefined) return null;
  const lines = (format.strip ? diag.replace(format.strip, '') : diag).split(/\r?\n/);
  let open: string | null = null;
  const joined = lines.map((line) => {
    const m = /^\s*([245]\d\d)([ -])(?:[245]\.\d{1,3}\.\d{1,3}\s)?/.exec(line);
    const continues = open !== null && m?.[1] === open;
    open = m?.[2] === '-' ? m[1]! : null;
    return continues ? line.slice(m[0].length) : line;
  });
  const text = unwrapReply(joined.join(' '));
  return text === '' ? null : text;
}

/**
 * A multi-line reply flattened onto one line (as Postfix and DSN Diagnostic-Code fields give it)
 * still carries each line's code: `552-5.7.0 … a potential 552-5.7.0 security issue`. The repeats
 * are dropped so the reply reads as the sentence its author wrote.
 */
export function unwrapReply(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  const first = /([245]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3} )?/.exec(flat);
  if (!first) return flat;
  const head = first.index + first[0].length;
  const repeat = new RegExp(` ${first[1]!}[ -](?:${(first[2] ?? '').trim().replace(/\./g, '\\.')} )?`, 'g');
  return flat.slice(0, head) + flat.slice(head).replace(repeat, ' ');
}

function global(re: RegExp): RegExp {
  return re.flags.includes('g') ? new RegExp(re.source, re.flags) : new RegExp(re.source, `${re.flags}g`);
}

export interface FormatEntry {
  readonly recipient: string;
  /** The remote server's words about this recipient, one line; null when the entry gives none. */
  readonly diagnostic: string | null;
}

/**
 * Recipients and their diagnostics as the first recognised format with `entries` (or, with
 * `which = 'replies'`, with `replies`) reads them.
 */
export function formatEntries(
  formats: readonly BounceFormat[],
  body: string,
  which: 'entries' | 'replies' = 'entries',
): FormatEntry[] {
  for (const f of formats) {
    const patterns = f[which];
    if (!patterns) continue;
    const out: FormatEntry[] = [];
    for (const re of patterns) {
      for (const m of body.matchAll(global(re))) {
        const recipient = m.groups?.['rcpt']?.toLowerCase().replace(/\.$/, '');
        if (!recipient || !isAddress(recipient) || out.length >= 100) continue;
        const diagnostic = clean(f, m.groups?.['diag']);
        const known = out.findIndex((e) => e.recipient === recipient);
        if (known < 0) out.push({ recipient, diagnostic });
        else if (!out[known]!.diagnostic && diagnostic) out[known] = { recipient, diagnostic };
      }
    }
    if (out.length > 0) return out;
  }
  return [];
}

/** The remote server's words that a recognised format states for all recipients at once. */
export function formatDiagnostic(formats: readonly BounceFormat[], body: string): string | null {
  for (const f of formats) {
    for (const re of f.diagnostic ?? []) {
      const diag = clean(f, re.exec(body)?.groups?.['diag']);
      if (diag) return diag;
    }
  }
  return null;
}

/**
 * The reason the recognised formats' own tables give: a classification field of the DSN group
 * first (the MTA's verdict), then the code tables against the status and the diagnostic texts.
 */
export function formatReason(
  formats: readonly BounceFormat[],
  status: string | null,
  texts: readonly string[],
  extensions: Readonly<Record<string, string>> = {},
): BounceReason | null {
  for (const f of formats) {
    if (!f.categoryField) continue;
    const value = extensions[f.categoryField.name]?.trim().toLowerCase();
    const reason = value ? f.categoryField.values[value] : undefined;
    if (reason) return reason;
  }
  return tableReason(formats, 'codes', status, texts);
}

/** The reason the recognised MTAs' own notices give, for when the remote reply told nothing. */
export function noticeReason(
  formats: readonly BounceFormat[],
  status: string | null,
  texts: readonly string[],
): BounceReason | null {
  return tableReason(formats, 'notices', status, texts);
}

function tableReason(
  formats: readonly BounceFormat[],
  table: 'codes' | 'notices',
  status: string | null,
  texts: readonly string[],
): BounceReason | null {
  const flat = texts.map((t) => t.replace(/\s+/g, ' ').toLowerCase());
  for (const f of formats) {
    for (const code of f[table] ?? []) {
      if (code.status !== undefined && !statusMatches(code.status, status)) continue;
      if (code.text && !flat.some((t) => code.text!.test(t))) continue;
      return code.reason;
    }
  }
  return null;
}
