/** The rule engine: status codes and diagnostic text → Sisimai reason and hard/soft category. */
import { RULES_TEXT } from './rules.js';

/** Sisimai reason names Petrel reports. */
export type BounceReason =
  | 'userunknown'
  | 'hostunknown'
  | 'hasmoved'
  | 'notaccept'
  | 'mailboxfull'
  | 'mesgtoobig'
  | 'exceedlimit'
  | 'suspend'
  | 'norelaying'
  | 'authfailure'
  | 'filtered'
  | 'requireptr'
  | 'notcompliantrfc'
  | 'badreputation'
  | 'contenterror'
  | 'rejected'
  | 'spamdetected'
  | 'speeding'
  | 'toomanyconn'
  | 'blocked'
  | 'virusdetected'
  | 'policyviolation'
  | 'systemerror'
  | 'systemfull'
  | 'networkerror'
  | 'expired'
  | 'failedstarttls'
  | 'securityerror'
  | 'mailererror'
  | 'suppressed'
  | 'syntaxerror'
  | 'onhold'
  | 'undefined'
  | 'delivered'
  | 'feedback'
  | 'vacation';

export type BounceCategory = 'hard' | 'soft' | 'complaint' | 'none';

/** One parsed line of the rules file. */
export interface BounceRule {
  readonly pattern: RegExp;
  readonly category: 'hard' | 'soft';
  readonly reason: BounceReason;
  /** Replies the rule is documented (and tested) to classify. */
  readonly samples: readonly string[];
  readonly line: number;
}

/** Reasons whose failure lies with the address itself: Sisimai's narrow notion of a hard bounce. */
export const HARD_REASONS: ReadonlySet<BounceReason> = new Set([
  'userunknown',
  'hostunknown',
  'hasmoved',
  'notaccept',
]);

/**
 * Parses rules in the bounces.txt format (see rules.ts). Throws on a malformed line, so a bad
 * rules file fails at load time and in the unit tests, never in the middle of a delivery.
 */
export function parseRules(text: string): BounceRule[] {
  const rules: BounceRule[] = [];
  let samples: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('> ')) {
      samples.push(line.slice(2));
      return;
    }
    const m = /^(.+),(hard|soft),([a-z]+)$/.exec(line);
    if (!m) throw new Error(`bounce rules line ${i + 1}: expected "regex,category,reason"`);
    rules.push({
      pattern: new RegExp(m[1]!, 'i'),
      category: m[2] as 'hard' | 'soft',
      reason: m[3] as BounceReason,
      samples,
      line: i + 1,
    });
    samples = [];
  });
  return rules;
}

/** The built-in rules, parsed once. */
export const RULES: readonly BounceRule[] = parseRules(RULES_TEXT);

/** Status code → reason, after RFC 3463 and Sisimai's table. */
const STATUS_REASON: Readonly<Record<string, BounceReason>> = {
  '4.1.6': 'hasmoved',
  '4.1.7': 'rejected',
  '4.1.8': 'rejected',
  '4.1.9': 'systemerror',
  '4.2.1': 'blocked',
  '4.2.2': 'mailboxfull',
  '4.2.3': 'exceedlimit',
  '4.2.4': 'filtered',
  '4.3.1': 'systemfull',
  '4.3.2': 'notaccept',
  '4.3.3': 'systemerror',
  '4.3.5': 'systemerror',
  '4.4.1': 'expired',
  '4.4.2': 'networkerror',
  '4.4.3': 'systemerror',
  '4.4.4': 'networkerror',
  '4.4.5': 'systemfull',
  '4.4.6': 'networkerror',
  '4.4.7': 'expired',
  '4.4.8': 'networkerror',
  '4.5.3': 'systemerror',
  '4.5.5': 'systemerror',
  '4.6.0': 'contenterror',
  '4.6.2': 'contenterror',
  '4.6.5': 'contenterror',
  '4.7.1': 'blocked',
  '4.7.2': 'blocked',
  '4.7.5': 'securityerror',
  '4.7.6': 'securityerror',
  '4.7.7': 'securityerror',
  '4.7.12': 'securityerror',
  '4.7.15': 'securityerror',
  '4.7.16': 'mesgtoobig',
  '4.7.24': 'authfailure',
  '4.7.25': 'requireptr',
  '4.7.26': 'authfailure',
  '5.1.0': 'userunknown',
  '5.1.1': 'userunknown',
  '5.1.2': 'hostunknown',
  '5.1.3': 'userunknown',
  '5.1.4': 'filtered',
  '5.1.6': 'hasmoved',
  '5.1.7': 'rejected',
  '5.1.8': 'rejected',
  '5.1.9': 'systemerror',
  '5.1.10': 'notaccept',
  '5.2.0': 'filtered',
  '5.2.1': 'filtered',
  '5.2.2': 'mailboxfull',
  '5.2.3': 'exceedlimit',
  '5.2.4': 'filtered',
  '5.3.0': 'systemerror',
  '5.3.1': 'systemfull',
  '5.3.2': 'notaccept',
  '5.3.3': 'systemerror',
  '5.3.4': 'mesgtoobig',
  '5.3.5': 'systemerror',
  '5.4.0': 'networkerror',
  '5.4.3': 'systemerror',
  '5.4.4': 'hostunknown',
  '5.5.2': 'syntaxerror',
  '5.5.3': 'toomanyconn',
  '5.5.4': 'systemerror',
  '5.5.5': 'systemerror',
  '5.5.6': 'syntaxerror',
  '5.6.0': 'contenterror',
  '5.6.1': 'contenterror',
  '5.6.2': 'contenterror',
  '5.6.3': 'contenterror',
  '5.6.5': 'contenterror',
  '5.6.6': 'contenterror',
  '5.6.7': 'contenterror',
  '5.6.8': 'contenterror',
  '5.6.9': 'contenterror',
  '5.7.0': 'securityerror',
  '5.7.1': 'securityerror',
  '5.7.2': 'securityerror',
  '5.7.3': 'securityerror',
  '5.7.4': 'securityerror',
  '5.7.5': 'securityerror',
  '5.7.6': 'securityerror',
  '5.7.7': 'securityerror',
  '5.7.8': 'securityerror',
  '5.7.9': 'securityerror',
  '5.7.10': 'securityerror',
  '5.7.11': 'securityerror',
  '5.7.13': 'suspend',
  '5.7.14': 'securityerror',
  '5.7.15': 'securityerror',
  '5.7.16': 'mesgtoobig',
  '5.7.17': 'hasmoved',
  '5.7.18': 'hasmoved',
  '5.7.19': 'securityerror',
  '5.7.20': 'authfailure',
  '5.7.21': 'authfailure',
  '5.7.22': 'authfailure',
  '5.7.23': 'authfailure',
  '5.7.24': 'authfailure',
  '5.7.25': 'requireptr',
  '5.7.26': 'authfailure',
  '5.7.27': 'notaccept',
  '5.7.28': 'spamdetected',
  '5.7.29': 'authfailure',
  '5.7.30': 'failedstarttls',
};

/**
 * Reasons a status code only hints at: the text is consulted first and these apply only when no
 * rule matches, because MTAs use the codes loosely (5.7.1 for everything from spam to relaying).
 */
const WEAK_STATUS_REASONS: ReadonlySet<BounceReason> = new Set([
  'securityerror',
  'systemerror',
  'networkerror',
  'filtered',
  'userunknown',
  'notaccept',
]);

/** Reasons a local delivery program (Diagnostic-Type X-UNIX) can state in its own error text. */
const LOCAL_REASONS: ReadonlySet<BounceReason> = new Set([
  'mailboxfull',
  'systemfull',
  'suspend',
  'virusdetected',
  'spamdetected',
]);

/** The reason an RFC 3463 status code names on its own, if any. */
export function statusReason(status: string | null): BounceReason | null {
  return status ? (STATUS_REASON[status] ?? null) : null;
}

export interface ReasonInput {
  readonly status: string | null;
  /** Texts to match, most specific first (the remote reply, then the paragraph around it). */
  readonly texts: readonly string[];
  readonly action?: string | null;
  readonly replyCode?: number | null;
  /** Diagnostic-Code type (`SMTP`, `X-UNIX`, …) when a DSN gave one. */
  readonly diagnosticType?: string | null;
  /** The SMTP command the reply answered, when the caller knows it; otherwise read from the text. */
  readonly command?: SmtpCommand | null;
}

export type SmtpCommand = 'RCPT' | 'DATA' | 'MAIL' | 'CONN';

const COMMAND_TESTS: readonly (readonly [SmtpCommand, RegExp])[] = [
  [
    'DATA',
    /(?:in reply to|after|>>>|while sending|command) ?(?:end of )?data\b|\bdata command|after end of data|after data/i,
  ],
  ['RCPT', /rcpt[ _]to|in reply to rcpt|>>> rcpt|after rcpt|does not like recipient|rcpt command/i],
  ['MAIL', /mail from:? ?(?:command|<)|in reply to mail|>>> mail from|after mail from/i],
  ['CONN', /after initial connection|(?:in reply to|after) (?:ehlo|helo)|greeting/i],
];

/** Collapses whitespace so multi-line diagnostics match single-line rules. */
export function flatText(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** What the rules make of one text: the first rule it matches and the SMTP commands it names. */
interface Analysis {
  readonly flat: string;
  /** Index of the first matching rule, or -1. */
  readonly first: number;
  readonly commands: ReadonlySet<SmtpCommand>;
}

/**
 * Analyses of recently seen texts, per rule list. A multi-recipient bounce passes the same report
 * text (and often the same reply) for every recipient; each is matched against the rules once.
 */
const ANALYSES = new WeakMap<readonly BounceRule[], Map<string, Analysis>>();
const MAX_CACHED_TEXTS = 512;

function analyse(text: string, rules: readonly BounceRule[]): Analysis {
  let cache = ANALYSES.get(rules);
  if (!cache) ANALYSES.set(rules, (cache = new Map()));
  const hit = cache.get(text);
  if (hit) return hit;
  const flat = flatText(text);
  const first = flat === '' ? -1 : rules.findIndex((r) => r.pattern.test(flat));
  const commands = new Set<SmtpCommand>();
  for (const [command, re] of COMMAND_TESTS) if (re.test(text)) commands.add(command);
  const analysis: Analysis = { flat, first, commands };
  if (cache.size >= MAX_CACHED_TEXTS) cache.clear();
  cache.set(text, analysis);
  return analysis;
}

/** Whether any rule recognises the text: whether the rules can say anything about it at all. */
export function anyRuleMatches(text: string, rules: readonly BounceRule[] = RULES): boolean {
  return analyse(text, rules).first >= 0;
}

/** Picks the Sisimai reason for a failure from its status code, diagnostic text and DSN action. */
export function findReason(input: ReasonInput, rules: readonly BounceRule[] = RULES): BounceReason {
  const { status, action } = input;
  if (status?.startsWith('2.') || action === 'delivered' || action === 'relayed' || action === 'expanded')
    return 'delivered';
  const analyses = input.texts.map((t) => analyse(t, rules));
  const named = statusReason(status);
  if (/^X-UNIX/i.test(input.diagnosticType ?? '') && (!named || WEAK_STATUS_REASONS.has(named))) {
    // A local delivery program's error: only its own words about the mailbox or the system count.
    const own = analyses[0] ? rules[analyses[0].first] : undefined;
    return own && LOCAL_REASONS.has(own.reason) ? own.reason : 'mailererror';
  }
  // A status naming a reason outright wins over any text matched by a later rule.
  if (named && !WEAK_STATUS_REASONS.has(named)) {
    const namedAt = rules.findIndex((r) => r.reason === named);
    const first = analyses[0]?.first ?? -1;
    if (namedAt >= 0 && (first < 0 || namedAt <= first)) return named;
  }
  for (const a of analyses) {
    if (a.first < 0) continue;
    const command =
      input.command ??
      COMMAND_TESTS.map(([c]) => c).find((c) => analyses.some((x) => x.commands.has(c))) ??
      null;
    return refine(rules[a.first]!.reason, named, command, input.replyCode ?? null);
  }
  if (named) return named;
  if (status && /^[45]\.6\./.test(status)) return 'contenterror';
  if (status && /^[45]\.7\./.test(status)) return 'securityerror';
  if (action === 'delayed') return 'expired';
  if (input.replyCode === 525) return 'suspend';
  return analyses.some((a) => a.flat !== '') ? 'onhold' : 'undefined';
}

/**
 * A text saying "user unknown" is only trusted as such when the status code agrees or the reply
 * answered RCPT TO; the same words after DATA come from a content filter (Sisimai's rule).
 */
function refine(
  reason: BounceReason,
  named: BounceReason | null,
  command: SmtpCommand | null,
  replyCode: number | null,
): BounceReason {
  // Refused at MAIL FROM, whatever the words: the envelope sender was rejected.
  if (command === 'MAIL' && (reason === 'userunknown' || reason === 'hostunknown')) return 'rejected';
  if (reason !== 'userunknown' || named === 'userunknown') return reason;
  if (command === 'DATA') return 'filtered';
  if (command !== null) return reason;
  // A quoted SMTP reply without its command, or a status saying "mailbox status": a filter's verdict.
  return named === 'filtered' || (named === null && replyCode !== null) ? 'filtered' : reason;
}

/** hard/soft for a failure: hard only for a bad address, and never for a temporary (4xx) failure. */
export function categoryOf(
  reason: BounceReason,
  status: string | null,
  action?: string | null,
): BounceCategory {
  if (reason === 'delivered' || reason === 'vacation') return 'none';
  if (reason === 'feedback') return 'complaint';
  if (!HARD_REASONS.has(reason)) return 'soft';
  if (action === 'delayed') return 'soft';
  // A bounce that gave up on a 4.x.x "no such user" still names a bad address (Sisimai's reading);
  // a 4.x.x without a final action, and a temporary "accepts no mail", stay soft.
  if (status?.startsWith('4.') && (action !== 'failed' || reason === 'notaccept')) return 'soft';
  return 'hard';
}
