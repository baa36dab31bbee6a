/** Reading a raw bounce, complaint or auto-reply into one result per recipient. */
import { addressesIn, embeddedOriginal, readArf } from './arf.js';
import { autoReplyAuthor, isAutoReply } from './autoreply.js';
import { addressOfField, normaliseStatus, parseDsnFields, type DsnRecipientFields } from './dsn.js';
import {
  DEFAULT_LIMITS,
  decodeTransfer,
  decodeWords,
  flatten,
  header,
  parseMime,
  partText,
  type MimeLimits,
  type MimePart,
} from './mime.js';
import {
  formatDiagnostic,
  formatEntries,
  formatReason,
  noticeReason,
  recogniseFormats,
  type BounceFormat,
  type FormatEntry,
  unwrapReply,
} from './formats.js';
import { anyRuleMatches, categoryOf, findReason, type BounceCategory, type BounceReason } from './reason.js';
import { readSesNotification, type SesNotification } from './ses.js';
import { inlineOriginalHeaders, looksLikeBounce, replyLines, reportText, textRecipients } from './text.js';

export type BounceKind = 'dsn' | 'arf' | 'autoreply' | 'none';

/** The reading of one recipient of a bounce, complaint or auto-reply. */
export interface BounceResult {
  readonly kind: BounceKind;
  /** Lowercased address; null when the message does not disclose it with confidence. */
  readonly recipient: string | null;
  /** RFC 3463 status (`5.1.1`); when the message gives none, a class-only one (`5.0.0`) derived from the reply code or action. */
  readonly status: string | null;
  /** DSN action (`failed`, `delayed`, `delivered`, …), inferred from the status when absent. */
  readonly action: string | null;
  readonly category: BounceCategory;
  readonly reason: BounceReason | null;
  /** The remote server's reply or the error text, one line, at most 1000 characters. */
  readonly diagnostic: string | null;
  readonly replyCode: number | null;
  /** ARF Feedback-Type for complaints (`abuse`, `auth-failure`, …). */
  readonly feedbackType: string | null;
}

/** Everything read from one message. */
export interface BounceReading {
  readonly kind: BounceKind;
  /** One entry per recipient; empty for kind `none`. */
  readonly results: readonly BounceResult[];
  /**
   * Selected headers of the embedded original message (lowercased names): return-path,
   * message-id and every x-petrel-* header, so the caller can map the bounce to its VERP token.
   */
  readonly originalHeaders: Readonly<Record<string, string>>;
}

const REPORT_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);

function oneLine(text: string | null): string | null {
  if (!text) return null;
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat === '' ? null : flat.slice(0, 1000);
}

function replyCodeIn(text: string | null): number | null {
  if (!text) return null;
  const m = /(?:^|[\s:;'(<"[])([245]\d\d)(?=[ :-]|$)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** The action a non-standard bounce states in prose (qmail's "I've given up" on a 4xx reply is final). */
function textAction(text: string): string | null {
  if (DELAYED_TEXT.test(text)) return 'delayed';
  return FAILED_TEXT.test(text) ? 'failed' : null;
}

/** A class-only status (`5.0.0`, `4.0.0`) when the message gave none, from the reply code or action. */
function derivedStatus(reason: BounceReason, replyCode: number | null, action: string): string | null {
  if (reason === 'delivered') return '2.0.0';
  if (replyCode !== null && replyCode >= 400) return replyCode >= 500 ? '5.0.0' : '4.0.0';
  return action === 'delayed' ? '4.0.0' : action === 'failed' ? '5.0.0' : null;
}

function actionFor(status: string | null, given: string | null): string | null {
  if (given) return given;
  if (!status) return null;
  if (status.startsWith('2.')) return 'delivered';
  return status.startsWith('4.') ? 'delayed' : 'failed';
}

function selectHeaders(headers: ReadonlyMap<string, readonly string[]> | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const [name, values] of headers) {
    if (name === 'return-path' || name === 'message-id' || name.startsWith('x-petrel-'))
      out[name] = values[0] ?? '';
  }
  return out;
}

interface Evidence {
  readonly recipient: string | null;
  readonly status: string | null;
  readonly action: string | null;
  readonly diagnostic: string | null;
  readonly diagnosticType?: string | null;
  readonly segment: string;
  /** The whole report text, consulted last. */
  readonly context: string;
  /** A reason the report's format settles on its own (e.g. a mailing list refusing a post). */
  readonly reason?: BounceReason | null;
  /** The MTA and provider formats the message was recognised as; their code tables come first. */
  readonly formats?: readonly BounceFormat[];
  /** The DSN group's X- extension fields. */
  readonly extensions?: Readonly<Record<string, string>>;
}

const FAILED_TEXT =
  /permanent (?:error|failure)|given up|not going to try again|fatal errors?|could not be delivered|was not delivered|undeliverable/i;
const DELAYED_TEXT =
  /has been delayed|delivery (?:is |has been )?delayed|will (?:be retried|continue to try|keep trying|try again)|warning message only|do not need to resend|still trying|not yet been delivered|temporarily deferred/i;

/**
 * Chooses between a DSN's Status field and the code quoted in the remote reply (after Sisimai's
 * rules): the one whose class agrees with the reply code; otherwise the reply's code where the
 * field is generic (`X.0.0`, `X.Y.0`) or ambiguous (4.4.7, 4.7.0, 5.3.x, X.5.x protocol codes).
 */
export function preferStatus(
  field: string | null,
  quoted: string | null,
  replyCode: number | null,
): string | null {
  if (!field) return quoted;
  if (!quoted || field === quoted) return field;
  const reply = replyCode === null ? '' : String(replyCode)[0];
  if (reply && field[0] !== quoted[0]) {
    if (reply === field[0]) return field;
    if (reply === quoted[0]) return quoted;
  }
  const fieldZero = /\.0\.0$/.test(field);
  const quotedZero = /\.0\.0$/.test(quoted);
  if (fieldZero) return quotedZero ? field : quoted;
  const fieldPartZero = /\.0(?:\.|$)/.test(field.slice(1));
  const quotedPartZero = /\.0(?:\.|$)/.test(quoted.slice(1));
  if (fieldPartZero && !quotedPartZero) return quoted;
  if (quotedZero) return field;
  if (field === '4.4.7' || field === '4.7.0' || field.startsWith('5.3.') || /^\d\.5\.[1245]$/.test(field))
    return quoted;
  if (field === '5.1.1') return quotedPartZero || quoted.startsWith('5.5.') ? field : quoted;
  if (field === '5.1.3' && quoted.startsWith('5.7.')) return quoted;
  return field;
}

/**
 * "Delivery time expired" (X.4.7) is the outcome, not the cause: where the report also quotes the
 * last reply a remote server gave (Exchange lists each attempt, SES and WorkMail nest it in angle
 * brackets), that reply's status of the same class says what went wrong.
 */
function expiryCause(status: string | null, texts: readonly string[]): string | null {
  if (!status || !/^[45]\.4\.7$/.test(status)) return status;
  for (const text of texts) {
    for (const m of text.matchAll(/(?:^|[^\d.])([45]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)/g)) {
      const cause = normaliseStatus(m[1]);
      if (cause && cause[0] === status[0] && !/^\d\.4\.7$/.test(cause)) return cause;
    }
  }
  return status;
}

function result(e: Evidence): BounceResult {
  const replyCode = replyCodeIn(e.diagnostic) ?? replyCodeIn(replyLines(e.segment));
  const quoted =
    normaliseStatus(e.diagnostic) ?? normaliseStatus(replyLines(e.segment)) ?? normaliseStatus(e.segment);
  const status = expiryCause(preferStatus(e.status, quoted, replyCode), [
    e.diagnostic ?? '',
    replyLines(e.segment),
  ]);
  const texts = [e.diagnostic ?? '', replyLines(e.segment), e.segment, e.context];
  const action =
    e.action ??
    textAction(e.context) ??
    actionFor(status, null) ??
    (replyCode !== null && replyCode < 500 ? 'delayed' : 'failed');
  const formats = e.formats ?? [];
  const own = [e.diagnostic ?? '', e.segment];
  // The MTA's own notice counts where the remote's words about this recipient tell the rules nothing.
  const notice = own.some((t) => anyRuleMatches(t)) ? null : noticeReason(formats, status, own);
  const reason =
    e.reason ??
    formatReason(formats, status, own, e.extensions) ??
    notice ??
    findReason({ status, texts, action, replyCode, diagnosticType: e.diagnosticType ?? null });
  return {
    kind: 'dsn',
    recipient: e.recipient,
    status: status ?? derivedStatus(reason, replyCode, action),
    action,
    category: categoryOf(reason, status ?? (replyCode && replyCode < 500 ? '4.0.0' : null), action),
    reason,
    diagnostic: oneLine(e.diagnostic) ?? oneLine(replyLines(e.segment)),
    replyCode,
    feedbackType: null,
  };
}

/** What the recognised formats read in the report text, beside the DSN fields. */
interface FormatReading {
  readonly formats: readonly BounceFormat[];
  readonly entries: readonly FormatEntry[];
  readonly replies: readonly FormatEntry[];
  /** The remote server's words the format states for every recipient. */
  readonly shared: string | null;
}

/** What the format's text says about one recipient: its entry, its reply, or what concerns all. */
function formatDiagnosticFor(reading: FormatReading, recipient: string): string | null {
  const own = (list: readonly FormatEntry[]): string | null =>
    list.find((e) => e.recipient === recipient)?.diagnostic ?? null;
  return fuller(fuller(own(reading.entries), own(reading.replies)), reading.shared);
}

const squash = (text: string): string => text.replace(/\s+/g, ' ').trim().toLowerCase();

/**
 * A DSN's Diagnostic-Code is often cut to the first line of a multi-line reply; the transcript the
 * format keeps in the text has all of it. The text's version is used only when it extends the field.
 */
function fuller(field: string | null, fromText: string | null): string | null {
  if (!fromText) return field;
  if (!field) return fromText;
  return squash(fromText).startsWith(squash(field)) ? fromText : field;
}

function fromDsn(
  group: DsnRecipientFields,
  segments: ReadonlyMap<string, string>,
  context: string,
  sole: string | null,
  reading: FormatReading,
): BounceResult {
  const named = group.finalRecipient ?? group.originalRecipient;
  const recipient =
    addressOfField(group.finalRecipient) ?? addressOfField(group.originalRecipient) ?? (named ? sole : null);
  const status = normaliseStatus(group.status) ?? normaliseStatus(group.diagnosticCode);
  const bareCode = /^\s*([245]\d\d)\s*$/.exec(group.status ?? '');
  const entry = recipient === null ? null : formatDiagnosticFor(reading, recipient);
  const field = group.diagnosticCode === null ? null : unwrapReply(group.diagnosticCode);
  const diagnostic = fuller(field ?? (bareCode ? bareCode[1]! : null), entry);
  return result({
    recipient,
    status,
    action: group.action,
    diagnostic,
    diagnosticType: group.diagnosticType,
    segment: (recipient && segments.get(recipient)) ?? '',
    context,
    formats: reading.formats,
    extensions: group.extensions,
  });
}

function dsnText(root: MimePart): string {
  return flatten(root)
    .filter((p) => REPORT_TYPES.has(p.type))
    .map((p) => partText(p))
    .join('\n');
}

function readDsnParts(root: MimePart, text: string): DsnRecipientFields[] {
  const groups: DsnRecipientFields[] = [];
  for (const p of flatten(root))
    if (REPORT_TYPES.has(p.type)) groups.push(...parseDsnFields(partText(p)).recipients);
  if (groups.length === 0 && /^final-recipient\s*:/im.test(text))
    groups.push(...parseDsnFields(text).recipients);
  return groups.filter((g) => g.finalRecipient || g.originalRecipient || g.status || g.diagnosticCode);
}

function fromSes(ses: SesNotification, originalHeaders: Record<string, string>): BounceReading {
  if (ses.type === 'complaint') {
    const recipients: (string | null)[] = ses.recipients.length > 0 ? [...ses.recipients] : [null];
    return { kind: 'arf', results: recipients.map((r) => complaint(r, ses.feedbackType)), originalHeaders };
  }
  const results = ses.recipients.map((r) =>
    result({
      recipient: r.recipient,
      status: normaliseStatus(r.status),
      action: r.action,
      diagnostic: r.diagnostic,
      segment: '',
      context: '',
    }),
  );
  return { kind: 'dsn', results, originalHeaders };
}

function complaint(recipient: string | null, feedbackType: string): BounceResult {
  return {
    kind: 'arf',
    recipient,
    status: null,
    action: null,
    category: 'complaint',
    reason: 'feedback',
    diagnostic: null,
    replyCode: null,
    feedbackType,
  };
}

/**
 * A reason implied by the report's format rather than by an SMTP reply: Google Groups' refusal of a
 * post (the "group may not exist, or you may not have permission to post" notice, in any language,
 * always with its four bulleted explanations) is a rejection of the sender.
 */
function groupsReason(root: MimePart, text: string): BounceReason | null {
  if (
    header(root, 'x-google-smtp-source') &&
    header(root, 'x-failed-recipients') &&
    text.includes('Google Groups') &&
    (text.match(/\n ?\* /g) ?? []).length === 4
  )
    return 'rejected';
  return null;
}

/**
 * The MTA and provider formats (formats.ts) a parsed message shows the markers of, in table order.
 * `text` is the human-readable report when the caller has it already.
 */
export function formatsOf(root: MimePart, text: string = reportText(root)): BounceFormat[] {
  return recogniseFormats({
    header: (name) => {
      const value = header(root, name);
      return value === undefined ? undefined : decodeWords(value);
    },
    body: text,
    dsn: dsnText(root),
  });
}

/**
 * A bounce pasted as text into another message: a provider's helpdesk notice with the MTA's bounce
 * below it, after the mbox `From MAILER-DAEMON …` line it was saved under. Only the first text part
 * holding one is read, and never a bounce inside the pasted bounce.
 */
function pastedBounce(root: MimePart): MimePart | null {
  for (const p of flatten(root)) {
    if (p.children.length > 0 || p.type !== 'text/plain') continue;
    const bytes = decodeTransfer(p.rawBody, header(p, 'content-transfer-encoding'));
    const m = /^From MAILER-DAEMON[^\n]*\r?\n(?=[!-9;-~]{1,76}:)/im.exec(bytes);
    if (m) return parseMime(Buffer.from(bytes.slice(m.index + m[0].length), 'latin1'));
  }
  return null;
}

/** Reads an already parsed MIME tree; see {@link classifyMessage}. */
export function classifyTree(root: MimePart): BounceReading {
  return readTree(root, false);
}

function readTree(root: MimePart, pasted: boolean): BounceReading {
  const original = embeddedOriginal(root);
  const originalMap = original?.headers ?? inlineOriginalHeaders(root);
  const originalHeaders = selectHeaders(originalMap);

  const arf = readArf(root);
  if (arf) {
    const recipients: (string | null)[] = arf.recipients.length > 0 ? [...arf.recipients] : [null];
    return { kind: 'arf', results: recipients.map((r) => complaint(r, arf.feedbackType)), originalHeaders };
  }

  const text = reportText(root);
  const ses = readSesNotification(text);
  if (ses) return fromSes(ses, originalHeaders);
  const groups = readDsnParts(root, text);
  if (groups.length === 0 && !pasted) {
    // The pasted bounce's own delivery-status fields say more than the prose wrapped around it.
    const inner = pastedBounce(root);
    if (inner && readDsnParts(inner, reportText(inner)).length > 0) return readTree(inner, true);
  }
  const formats = formatsOf(root, text);
  const reading: FormatReading = {
    formats,
    entries: formatEntries(formats, text),
    replies: formatEntries(formats, text, 'replies'),
    shared: formatDiagnostic(formats, text),
  };
  if (groups.length > 0 || reading.entries.length > 0 || looksLikeBounce(root, text)) {
    const fromText = textRecipients(root, text, originalMap);
    const segments = new Map(fromText.map((t) => [t.recipient, t.segment]));
    // A malformed Final-Recipient in a one-recipient DSN is replaced only by an unambiguous text reading.
    const sole = groups.length === 1 && fromText.length === 1 ? fromText[0]!.recipient : null;
    // A format's entries list the failed recipients; X-Failed-Recipients may still name more.
    const declared = header(root, 'x-failed-recipients')
      ? fromText.filter((t) => !reading.entries.some((e) => e.recipient === t.recipient))
      : [];
    const inText = (reading.entries.length > 0 ? [...reading.entries, ...declared] : fromText).map((t) => ({
      recipient: t.recipient,
      diagnostic: formatDiagnosticFor(reading, t.recipient),
    }));
    const results =
      groups.length > 0
        ? groups.map((g) => fromDsn(g, segments, text, sole, reading))
        : inText.map((t) =>
            result({
              recipient: t.recipient,
              status: null,
              action: null,
              diagnostic: t.diagnostic,
              segment: segments.get(t.recipient) ?? '',
              context: text,
              reason: groupsReason(root, text),
              formats,
            }),
          );
    if (results.length > 0) return { kind: 'dsn', results, originalHeaders };
    if (root.type === 'multipart/report' || !isAutoReply(root)) {
      const to = (originalMap?.get('to') ?? []).flatMap((v) => addressesIn(v));
      const recipient = to.length === 1 ? to[0]! : null;
      const single = result({
        recipient,
        status: null,
        action: null,
        diagnostic: null,
        segment: text,
        context: text,
      });
      return { kind: 'dsn', results: [single], originalHeaders };
    }
  }

  if (isAutoReply(root)) {
    const auto: BounceResult = {
      kind: 'autoreply',
      recipient: autoReplyAuthor(root),
      status: null,
      action: null,
      category: 'none',
      reason: 'vacation',
      diagnostic: null,
      replyCode: null,
      feedbackType: null,
    };
    return { kind: 'autoreply', results: [auto], originalHeaders };
  }
  return { kind: 'none', results: [], originalHeaders };
}

/**
 * Classifies a raw bounce (RFC 3464 DSN or a non-standard one), complaint (RFC 5965 ARF) or
 * auto-reply (RFC 3834). Pure and synchronous; never throws: input beyond the limits (size, MIME
 * depth, number of parts) is ignored, and anything unreadable yields kind `none`.
 */
export function classifyMessage(raw: Buffer, limits: MimeLimits = DEFAULT_LIMITS): BounceReading {
  try {
    return classifyTree(parseMime(raw, limits));
  } catch {
    return { kind: 'none', results: [], originalHeaders: {} };
  }
}
