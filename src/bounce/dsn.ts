import { domainToASCII } from 'node:url';

/**
 * RFC 3464 delivery-status fields. Also used on text parts of non-standard bounces that copy the
 * same `Field: value` lines into their human-readable body.
 */

/** The per-recipient fields of one DSN group, raw values trimmed. */
export interface DsnRecipientFields {
  readonly finalRecipient: string | null;
  readonly originalRecipient: string | null;
  readonly action: string | null;
  readonly status: string | null;
  readonly diagnosticCode: string | null;
  readonly diagnosticType: string | null;
  readonly remoteMta: string | null;
  /**
   * The group's `X-` extension fields (lowercased names), where MTAs put their own verdicts, such as
   * PowerMTA's `X-PowerMTA-BounceCategory`.
   */
  readonly extensions: Readonly<Record<string, string>>;
}

export interface DsnFields {
  readonly reportingMta: string | null;
  readonly recipients: readonly DsnRecipientFields[];
}

const RECIPIENT_FIELDS = new Set([
  'final-recipient',
  'original-recipient',
  'x-actual-recipient',
  'action',
  'status',
  'diagnostic-code',
  'remote-mta',
  'last-attempt-date',
  'will-retry-until',
  'final-log-id',
  'x-display-name',
]);

/** Undoes RFC 6533 utf-8-addr-xtext: `\x{7528}` → 用. */
function fromXtext(value: string): string {
  return value.replace(/\\x\{([0-9A-Fa-f]{2,6})\}/g, (all, hex: string) => {
    const code = parseInt(hex, 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : all;
  });
}

/**
 * Extracts the address from `rfc822; user@example.com` (or a bare address); null when none.
 * A `utf-8;` address (RFC 6533) comes back in UTF-8, its `\x{HEX}` escapes decoded.
 */
export function addressOfField(value: string | null | undefined): string | null {
  if (!value) return null;
  if (/^\s*utf-8\s*;/i.test(value)) {
    const decoded = fromXtext(value.replace(/^\s*utf-8\s*;/i, '').trim());
    if (decoded.includes('@') && /[^\p{ASCII}]/u.test(decoded)) return utf8Address(decoded);
  }
  const v = value.replace(/^\s*(rfc822|utf-8|x-local|unknown)\s*;/i, '').trim();
  const m = /<?([^\s<>"';,()]+@[^\s<>"';,()]+?)>?\.?$/.exec(v) ?? /<?([^\s<>"';,()]+@[A-Za-z0-9.-]+)/.exec(v);
  if (!m) return null;
  const addr = m[1]!.replace(/^mailto:/i, '').toLowerCase();
  return /^[^@\s]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.?$/i.test(addr) ? addr.replace(/\.$/, '') : null;
}

/** A UTF-8 address: checked with its domain in A-labels, returned as written (lowercased). */
function utf8Address(value: string): string | null {
  const m = /^<?([^\s<>"';,()@]+)@([^\s<>"';,()@]+?)>?\.?$/u.exec(value);
  if (!m) return null;
  const ascii = domainToASCII(m[2]!);
  return ascii !== '' && isAddress(`x@${ascii}`) ? `${m[1]!}@${m[2]!}`.toLowerCase() : null;
}

/** Whether a (lowercased) string is a plausible mailbox: a local part, "@", and a dotted-or-not domain. */
export function isAddress(value: string): boolean {
  return /^[^@\s<>"]{1,256}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})*$/i.test(value);
}

/** Normalises an RFC 3463 status (`5.1.1`), or null when the value is not one (e.g. `550`). */
export function normaliseStatus(value: string | null | undefined): string | null {
  if (!value) return null;
  const m = /(?:^|[^\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)/.exec(` ${value}`);
  return m ? `${m[1]}.${Number(m[2])}.${Number(m[3])}` : null;
}

function emptyGroup(): Record<string, string> {
  return {};
}

function toRecipient(g: Record<string, string>): DsnRecipientFields {
  const diag = g['diagnostic-code'] ?? null;
  const typed = diag ? /^\s*([\w-]+)\s*;\s*([\s\S]*)$/.exec(diag) : null;
  return {
    finalRecipient: g['final-recipient'] ?? g['x-actual-recipient'] ?? null,
    originalRecipient: g['original-recipient'] ?? null,
    action: g['action']?.trim().toLowerCase().split(/[\s(]/)[0] ?? null,
    status: g['status'] ?? null,
    diagnosticCode: typed ? typed[2]!.trim() : diag,
    diagnosticType: typed ? typed[1]!.toUpperCase() : null,
    remoteMta: g['remote-mta'] ?? null,
    extensions: Object.fromEntries(
      Object.entries(g).filter(([name]) => name.startsWith('x-') && name !== 'x-actual-recipient'),
    ),
  };
}

/**
 * Parses `Field: value` lines of a message/delivery-status body. Groups are split at blank lines
 * and, for senders that omit them, whenever a recipient field repeats.
 */
export function parseDsnFields(text: string): DsnFields {
  let reportingMta: string | null = null;
  const groups: Record<string, string>[] = [];
  let current = emptyGroup();
  let last: string | null = null;
  const close = (): void => {
    if (
      current['final-recipient'] ||
      current['original-recipient'] ||
      current['x-actual-recipient'] ||
      current['status']
    ) {
      groups.push(current);
    }
    current = emptyGroup();
    last = null;
  };
  for (const line of text.split(/\r?\n/).slice(0, 5000)) {
    if (line.trim() === '') {
      if (current['final-recipient'] || current['status']) close();
      last = null;
      continue;
    }
    if (/^[ \t]/.test(line) && last) {
      current[last] = `${current[last] ?? ''} ${line.trim()}`;
      continue;
    }
    const m = /^([A-Za-z][\w-]*)\s*:\s*(.*)$/.exec(line);
    if (!m) {
      last = null;
      continue;
    }
    const name = m[1]!.toLowerCase();
    const value = m[2]!.trim();
    if (name === 'reporting-mta') reportingMta ??= value;
    // Per-message X- fields come before the first recipient; only a recipient group's own are kept.
    const extension = name.startsWith('x-') && (current['final-recipient'] ?? current['original-recipient']);
    if (!RECIPIENT_FIELDS.has(name) && !extension) {
      last = null;
      continue;
    }
    const startsRecipient = name === 'final-recipient' || name === 'original-recipient';
    if (startsRecipient && current[name] !== undefined) {
      close();
    } else if (current[name] !== undefined && !startsRecipient) {
      close();
    }
    current[name] = value;
    last = name;
  }
  close();
  return { reportingMta, recipients: groups.map(toRecipient) };
}
