/**
 * The strict reading of a report that may change suppression. The classifier (classify.ts) reads
 * whatever a bounce looks like, for statistics and `petrel bounce classify`; acting on a report
 * needs more: an RFC 3464 DSN or RFC 5965 ARF whose fields leave no doubt. Anything else that
 * looks like a report is `unparsed`, with the reason why.
 */
import { addressesIn, embeddedOriginal } from './arf.js';
import { classifyTree, type BounceResult } from './classify.js';
import { addressOfField, parseDsnFields } from './dsn.js';
import {
  DEFAULT_LIMITS,
  flatten,
  header,
  parseHeaderBlock,
  parseMime,
  partText,
  type MimeLimits,
  type MimePart,
} from './mime.js';
import { inlineOriginalHeaders } from './text.js';

/** Why a report was not acted on; a closed list, so it can label a metric. */
export type UnparsedWhy =
  | 'no-report-type'
  | 'no-report-part'
  | 'no-final-recipient'
  | 'bad-action'
  | 'bad-status'
  | 'conflicting-recipients'
  | 'no-feedback-type'
  | 'no-version'
  | 'unknown-feedback-type'
  | 'unreadable';

export type ReportReading =
  /** A DSN every recipient group of which has a Final-Recipient, a known Action and an enhanced Status. */
  | {
      readonly kind: 'dsn';
      readonly results: readonly BounceResult[];
      readonly returnPaths: readonly string[];
    }
  /** An ARF with Version 1 and a registered Feedback-Type; `complaint` when that type is a recipient's complaint. */
  | {
      readonly kind: 'arf';
      readonly feedbackType: string;
      readonly complaint: boolean;
      readonly returnPaths: readonly string[];
    }
  | { readonly kind: 'unparsed'; readonly why: UnparsedWhy; readonly returnPaths: readonly string[] }
  /** Not a report at all (an auto-reply, ordinary mail). */
  | { readonly kind: 'none'; readonly returnPaths: readonly string[] };

/** Return-path candidates taken from one report at most; each may cost its reader a MAC check. */
export const MAX_RETURN_PATHS = 8;

const DSN_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);
const ACTIONS = new Set(['failed', 'delayed', 'delivered', 'relayed', 'expanded']);
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}(?:\s*\(.*\))?$/;
/** The IANA Feedback-Type registry (RFC 5965, RFC 6591). */
const FEEDBACK_TYPES = new Set(['abuse', 'fraud', 'virus', 'other', 'not-spam', 'auth-failure']);
/** The types that say a recipient did not want the mail; `other`, `not-spam` and `auth-failure` do not. */
const COMPLAINT_TYPES = new Set(['abuse', 'fraud', 'virus']);

/**
 * Where a report names the return path of the original it is about, in this order: the ARF
 * Original-Mail-From (the envelope sender), the original's Return-Path, the report's own
 * X-Original-To / Delivered-To / To (a report forwarded from a return path), the original's To.
 * At most {@link MAX_RETURN_PATHS} distinct addresses, however many the message holds.
 */
export function returnPathCandidates(root: MimePart): string[] {
  const out: string[] = [];
  const add = (value: string | undefined): void => {
    for (const a of addressesIn(value)) {
      if (out.length >= MAX_RETURN_PATHS) return;
      if (!out.includes(a)) out.push(a);
    }
  };
  const feedback = flatten(root).find((p) => p.type === 'message/feedback-report');
  if (feedback) add(parseHeaderBlock(partText(feedback)).get('original-mail-from')?.[0]);
  const original = embeddedOriginal(root)?.headers ?? inlineOriginalHeaders(root);
  add(original?.get('return-path')?.[0]);
  for (const name of ['x-original-to', 'delivered-to', 'to']) add(header(root, name));
  add(original?.get('to')?.[0]);
  return out;
}

function readDsn(root: MimePart, returnPaths: readonly string[]): ReportReading {
  const unparsed = (why: UnparsedWhy): ReportReading => ({ kind: 'unparsed', why, returnPaths });
  const part = flatten(root).find((p) => DSN_TYPES.has(p.type));
  if (!part) return unparsed('no-report-part');
  const groups = parseDsnFields(partText(part)).recipients;
  if (groups.length === 0) return unparsed('no-final-recipient');
  const seen = new Map<string, string>();
  for (const g of groups) {
    const recipient = addressOfField(g.finalRecipient);
    if (!recipient) return unparsed('no-final-recipient');
    if (!g.action || !ACTIONS.has(g.action)) return unparsed('bad-action');
    const status = g.status?.trim() ?? '';
    if (!ENHANCED.test(status)) return unparsed('bad-status');
    // The same recipient twice with different outcomes: which one holds is anybody's guess.
    const outcome = `${g.action} ${status[0]}`;
    if ((seen.get(recipient) ?? outcome) !== outcome) return unparsed('conflicting-recipients');
    seen.set(recipient, outcome);
  }
  const reading = classifyTree(root);
  return { kind: 'dsn', results: reading.kind === 'dsn' ? reading.results : [], returnPaths };
}

function readFeedback(root: MimePart, returnPaths: readonly string[]): ReportReading {
  const unparsed = (why: UnparsedWhy): ReportReading => ({ kind: 'unparsed', why, returnPaths });
  const part = flatten(root).find((p) => p.type === 'message/feedback-report');
  if (!part) return unparsed('no-report-part');
  const fields = parseHeaderBlock(partText(part).replace(/^\s*\r?\n/, ''));
  const type = fields.get('feedback-type')?.[0]?.trim().toLowerCase();
  if (!type) return unparsed('no-feedback-type');
  if (fields.get('version')?.[0]?.trim() !== '1') return unparsed('no-version');
  if (!FEEDBACK_TYPES.has(type)) return unparsed('unknown-feedback-type');
  return { kind: 'arf', feedbackType: type, complaint: COMPLAINT_TYPES.has(type), returnPaths };
}

/**
 * Reads a raw inbound message for acting on it: a certain DSN or ARF, an `unparsed` report
 * (it looks like one, as the classifier reads it, but is not well-formed), or `none`. Bounded by
 * `limits` like the classifier; never throws.
 */
export function readReport(raw: Buffer, limits: MimeLimits = DEFAULT_LIMITS): ReportReading {
  let returnPaths: readonly string[] = [];
  try {
    const root = parseMime(raw, limits);
    returnPaths = returnPathCandidates(root);
    const reportType =
      root.type === 'multipart/report' ? (root.params.get('report-type') ?? '').trim().toLowerCase() : '';
    if (reportType === 'feedback-report') return readFeedback(root, returnPaths);
    if (reportType === 'delivery-status' || reportType === 'global-delivery-status')
      return readDsn(root, returnPaths);
    const lenient = classifyTree(root);
    if (lenient.kind === 'dsn' || lenient.kind === 'arf' || root.type === 'multipart/report')
      return { kind: 'unparsed', why: 'no-report-type', returnPaths };
    return { kind: 'none', returnPaths };
  } catch {
    return { kind: 'unparsed', why: 'unreadable', returnPaths };
  }
}
