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
import type { BounceReason } from './reason.js';

/**
 * Where a marker looks: a lowercased header of the bounce itself, `body` (the human-readable
 * report), or `dsn` (the message/delivery-status parts, Remote-MTA and Diagnostic-Code included).
 */
export type MarkerSource = 'body' | 'dsn' | (string & {});
export type Marker = readonly [MarkerSource, RegExp];

/** One entry of a format's code table. Every condition given must hold. */
export interface FormatCode {
  /** An enhanced status (`5.4.312`), a class and subject (`5.7.`), or a range of details (`5.7.606-649`). */
  readonly status?: string;
  /** A phrase of the diagnostic, matched case-insensitively with whitespace collapsed. */
  readonly text?: RegExp;
  readonly reason: BounceReason;
}

export interface BounceFormat {
  readonly name: string;
  /** Where the format and its codes are documented. */
  readonly source: string;
  /** The format is recognised when any marker matches… */
  readonly markers: readonly Marker[];
  /** …and every one of these does. */
  readonly requires?: readonly Marker[];
  /**
   * Per-recipient statements in the report text: each match names the recipient in group `rcpt`
   * and, optionally, the remote server's words about it in group `diag`.
   */
  readonly entries?: readonly RegExp[];
  /**
   * Per-recipient replies (groups `rcpt` and `diag`) that do not list every failed recipient, such
   * as a transcript showing only the RCPT TO refusals: they give diagnostics, never the recipients.
   */
  readonly replies?: readonly RegExp[];
  /** The remote server's words that concern every recipient (group `diag`), e.g. a refusal after DATA. */
  readonly diagnostic?: readonly RegExp[];
  /** Removed from every diagnostic the format yields (transcript prefixes, wrapping). */
  readonly strip?: RegExp;
  /**
   * What the provider's replies mean, tried in order against the status and the diagnostic before
   * the general rules: the words are the provider's own, so its documentation decides.
   */
  readonly codes?: readonly FormatCode[];
  /**
   * The MTA's own notices about what it did (gave up, found no host). They are the outcome, not the
   * cause: consulted only when the remote server's reply quoted beside them tells the rules nothing.
   */
  readonly notices?: readonly FormatCode[];
  /** A per-recipient DSN extension field carrying the MTA's own classification, and its values. */
  readonly categoryField?: {
    readonly name: string;
    readonly values: Readonly<Record<string, BounceReason>>;
  };
}

/** What a format needs to see of a message to recognise it. */
export interface FormatView {
  header(name: string): string | undefined;
  /** The human-readable report. */
  readonly body: string;
  /** The text of the message/delivery-status parts, empty when there are none. */
  readonly dsn: string;
}

export const FORMATS: readonly BounceFormat[] = [
  // Providers first: their code tables speak for the replies they give, whoever wrote the bounce.
  {
    name: 'office365',
    source:
      'Microsoft, "Email non-delivery reports and SMTP errors in Exchange Online" (learn.microsoft.com/exchange/troubleshoot/email-delivery/ndr/non-delivery-reports-in-exchange-online) and "Fix email delivery issues for error codes 5.7.700 through 5.7.750"',
    markers: [
      ['body', /^Diagnostic information for administrators:/m],
      ['dsn', /\.(?:protection|prod)\.outlook\.com\b/i],
      ['message-id', /\.(?:protection|prod)\.outlook\.com>/i],
    ],
    codes: [
      { status: '4.4.312', reason: 'networkerror' },
      { status: '5.4.312', reason: 'networkerror' },
      { status: '5.4.310', reason: 'hostunknown' },
      { status: '5.4.14', reason: 'networkerror' },
      { status: '5.4.6', text: /routing loop|hop count exceeded/, reason: 'networkerror' },
      { status: '5.4.1', text: /recipient address rejected: access denied/, reason: 'userunknown' },
      { status: '5.4.1', text: /relay access denied/, reason: 'norelaying' },
      { status: '5.4.300', reason: 'expired' },
      { status: '5.1.8', text: /bad outbound sender/, reason: 'rejected' },
      { status: '5.1.90', reason: 'speeding' },
      { status: '5.2.121', reason: 'speeding' },
      { status: '5.2.122', reason: 'speeding' },
      { status: '5.6.11', reason: 'contenterror' },
      { status: '5.7.12', reason: 'rejected' },
      { status: '5.7.124', reason: 'rejected' },
      { status: '5.7.133-136', reason: 'rejected' },
      { status: '5.7.23', reason: 'authfailure' },
      { status: '5.7.509', reason: 'authfailure' },
      { status: '5.7.515', reason: 'authfailure' },
      { status: '5.7.25', reason: 'requireptr' },
      { status: '5.7.57', reason: 'securityerror' },
      { status: '5.7.501-503', reason: 'blocked' },
      { status: '5.7.506-511', reason: 'blocked' },
      { status: '5.7.512', reason: 'notcompliantrfc' },
      { status: '5.7.513', reason: 'blocked' },
      { status: '5.7.606-649', reason: 'blocked' },
      { status: '5.7.700-750', reason: 'blocked' },
      { status: '4.7.500-699', reason: 'blocked' },
      { status: '4.7.650', reason: 'badreputation' },
      // The transport's own component codes, which Exchange puts beside the enhanced status.
      { text: /resolver\.adr\.(?:ex)?recip(?:ient)?notfound/, reason: 'userunknown' },
      { text: /resolver\.rst\.(?:authrequired|notauthorized)/, reason: 'rejected' },
      { text: /resolver\.rst\.recipsizelimit/, reason: 'exceedlimit' },
      { text: /storedrv\.deliver\.exception:quotaexceededexception/, reason: 'mailboxfull' },
    ],
  },
  {
    name: 'outlook.com',
    source:
      'Outlook.com Postmaster, "Troubleshooting" (sendersupport.olc.protection.outlook.com/pm/troubleshooting.aspx): the SC-, DY-, OU- and RP- codes of the consumer service',
    markers: [
      ['body', /\b(?:SC|DY|OU|RP)-00\d\b/],
      ['dsn', /\b(?:SC|DY|OU|RP)-00\d\b/],
    ],
    codes: [
      { text: /\b(?:sc-00[1-4]|dy-00[12]|ou-00[12])\b/, reason: 'blocked' },
      { text: /\brp-001\b/, reason: 'speeding' },
      { text: /\brp-00[23]\b/, reason: 'toomanyconn' },
    ],
  },
  {
    name: 'google',
    source:
      'Google, "SMTP errors and codes" (support.google.com/a/answer/3726730) and Google Groups\' rejection notices (support.google.com/a/answer/168383)',
    markers: [
      ['from', /mailer-daemon@google(?:mail)?\.com\b/i],
      ['dsn', /\bgsmtp\b|^remote-mta:\s*dns;\s*\S+\.google\.com/im],
      ['body', /\bgsmtp\b/],
    ],
    codes: [
      { text: /content presents a potential security issue/, reason: 'policyviolation' },
      { text: /rejected due to spam classification/, reason: 'spamdetected' },
      {
        text: /likely unsolicited mail|message has been blocked because it (?:is|looks like) spam/,
        reason: 'spamdetected',
      },
      { text: /very low reputation of the sending (?:ip|domain)/, reason: 'badreputation' },
      { text: /unusual rate of unsolicited mail originating from your ip/, reason: 'blocked' },
      { text: /not authorized to send email directly to our servers/, reason: 'blocked' },
      {
        text: /does not have authentication information or fails to pass authentication checks|this mail is unauthenticated/,
        reason: 'authfailure',
      },
      { text: /the email account that you tried to reach does not exist/, reason: 'userunknown' },
      { text: /the email account that you tried to reach is disabled/, reason: 'suspend' },
      {
        text: /the email account that you tried to reach is over quota|inbox is out of storage space|recipient's inbox is out of storage/,
        reason: 'mailboxfull',
      },
      { text: /message exceeded google's message size limits/, reason: 'mesgtoobig' },
      { text: /daily user sending (?:quota|limit) exceeded/, reason: 'speeding' },
    ],
  },
  {
    name: 'yahoo',
    source:
      'Yahoo Sender Hub, "SMTP Error Codes" (senders.yahooinc.com/smtp-error-codes) and Yahoo Help SLN3444 "Email sent to Yahoo Mail addresses is rejected"',
    markers: [
      ['dsn', /\byahoodns\.net\b|^remote-mta:\s*dns;\s*\S+\.yahoo\.com/im],
      ['body', /\byahoodns\.net\b/],
      ['from', /mailer-daemon@yahoo(?:-inc)?\.com\b/i],
    ],
    codes: [
      { text: /this user doesn'?t have a [\w.-]* ?account/, reason: 'userunknown' },
      { text: /this account is over quota/, reason: 'mailboxfull' },
      { text: /this mailbox is disabled|\(554\.30\)/, reason: 'suspend' },
      { text: /user is receiving mail too quickly/, reason: 'speeding' },
      { text: /excessive unknown recipients - possible open relay|vs99-ip1 deferred/, reason: 'blocked' },
      { text: /connections will not be accepted from/, reason: 'blocked' },
      { text: /\[ph01\]|not accepted for policy reasons/, reason: 'policyviolation' },
    ],
  },
  {
    name: 'messagelabs',
    source:
      'Broadcom (Symantec Email Security.cloud) knowledge base, "Email error and bounce codes for Email Security.cloud" (knowledge.broadcom.com/external/article/169652)',
    markers: [
      ['body', /Symantec Email Security\.cloud|\bmessagelabs\.com\b/i],
      ['dsn', /\bmessagelabs\.com\b/i],
    ],
    codes: [
      { text: /domain authentication fail/, reason: 'authfailure' },
      { text: /connection rejected by policy/, reason: 'badreputation' },
      { text: /your ip is in the pbl|your ip address has been (?:blocked|blacklisted)/, reason: 'blocked' },
      { text: /stray linefeeds in message/, reason: 'contenterror' },
      { text: /tls\/sslv3 connection required/, reason: 'failedstarttls' },
      { text: / as a relay, but i have not been configured/, reason: 'norelaying' },
      { text: /has detected that this message is not rfc 5322/, reason: 'notcompliantrfc' },
      {
        text: /sender envelope domain not allowed for sender ip address|your (?:domain|email address) has been (?:blocked|blacklisted)|your envelope sender is in my badmailfrom list/,
        reason: 'rejected',
      },
      { text: /please turn on smtp authentication in your mail client/, reason: 'securityerror' },
      { text: /message filtered|filtered by outbound scanning/, reason: 'spamdetected' },
      { text: /too many recipients received this hour/, reason: 'toomanyconn' },
      { text: /invalid recipient|recipient mailbox is not allowed/, reason: 'userunknown' },
    ],
  },
  {
    name: 'powermta',
    source:
      'PowerMTA User\'s Guide, "Bounce categories" (the X-PowerMTA-BounceCategory DSN field; categories listed at it.i88.ca/2014/11/bounce-categories-of-powermta.html)',
    markers: [['dsn', /^X-PowerMTA-/im]],
    categoryField: {
      name: 'x-powermta-bouncecategory',
      values: {
        'bad-mailbox': 'userunknown',
        'bad-domain': 'hostunknown',
        'inactive-mailbox': 'suspend',
        'quota-issues': 'mailboxfull',
        'message-expired': 'expired',
        'no-answer-from-host': 'networkerror',
        'bad-connection': 'networkerror',
        'routing-errors': 'networkerror',
        'bad-configuration': 'systemerror',
        'invalid-sender': 'rejected',
        'policy-related': 'policyviolation',
        'relaying-issues': 'norelaying',
        'protocol-errors': 'syntaxerror',
        'spam-related': 'spamdetected',
        'virus-related': 'virusdetected',
        'content-related': 'contenterror',
      },
    },
  },
  {
    name: 'verizon',
    source: "Verizon Wireless's vtext.com notices, as collected in Sisimai's set-of-emails (lhost-verizon)",
    markers: [['from', /@vtext\.com\b/i]],
    entries: [/^\s*RCPT TO:\s*<?(?<rcpt>[^\s<>]+@[^\s<>]+?)>?\s*$/im],
    diagnostic: [/^Error message below:\s*\n(?<diag>.+)/im],
  },
  // Mailing list managers.
  {
    name: 'fml',
    source:
      'fml mailing list server (www.fml.org): its notices to senders and its loop check on duplicated Message-IDs',
    markers: [['x-mlserver', /\bfml\b/i]],
    // fml's own notices, not the list's ordinary posts (which carry X-MLServer too).
    requires: [
      ['from', /-admin@/i],
      ['message-id', /\.FML/i],
    ],
    entries: [/^(?<diag>[^\n<]*<(?<rcpt>[^\s<>@]+@[^\s<>]+)>[^\n]*)$/m],
    notices: [
      {
        text: /duplicated message-id|loop (?:alert|back warning)|detected a loop condition/,
        reason: 'systemerror',
      },
      {
        text: /not (?:a )?member|reject mail from|reject spammers|header may cause mail loop/,
        reason: 'rejected',
      },
      { text: /security alert/, reason: 'securityerror' },
    ],
  },
  // MTAs.
  {
    name: 'domino',
    source:
      'HCL (IBM Lotus) Domino Administrator help, "Customizing delivery failure reports" and the Router\'s delivery failure report (help.hcltechsw.com/domino)',
    markers: [
      ['subject', /^DELIVERY[ _]FAILURE:/i],
      ['body', /^\s*was not delivered to:\s*$/m],
    ],
    entries: [
      /was not delivered to:\s*\n\s*(?<rcpt>[^\s<>@]+@[^\s<>]+)\s*\n\s*because:\s*\n\s*(?<diag>[^\n]+)/gi,
    ],
    notices: [
      {
        text: /not listed in (?:the )?(?:domino directory|public name & address book)/,
        reason: 'userunknown',
      },
      { text: /no route found to domain/, reason: 'hostunknown' },
    ],
  },
  {
    name: 'qmail',
    source:
      'D. J. Bernstein, "qmail-send Bounce Message Format (QSBMF)" (cr.yp.to/proto/qsbmf.txt); qmail-remote(8)',
    markers: [['body', /^Hi\. This is the qmail-send program at /m]],
    entries: [/^<(?<rcpt>[^\s<>@]+@[^\s<>]+)>:\n(?<diag>(?:[^\n]+(?:\n|$))+)/gm],
    notices: [
      { text: /sorry, i couldn'?t find any host (?:named|by that name)/, reason: 'hostunknown' },
      { text: /sorry, no mailbox here by that name/, reason: 'userunknown' },
      { text: /i'?m not going to try again; this message has been in the queue too long/, reason: 'expired' },
      { text: /sorry, i wasn'?t able to establish an smtp connection/, reason: 'networkerror' },
      { text: /this message is looping: it already has my delivered-to line/, reason: 'networkerror' },
      { text: /although i'?m listed as a best-preference mx or a for that host/, reason: 'systemerror' },
      { text: /connected to \S+ but sender was rejected/, reason: 'rejected' },
    ],
  },
  {
    name: 'exim',
    source:
      'Exim specification, chapter "Customizing bounce and warning messages" and the retry rules chapter (exim.org/exim-html-current/doc/html/spec_html/)',
    markers: [
      ['body', /^This message was created automatically by mail delivery software\./m],
      ['x-failed-recipients', /@/],
    ],
    entries: [/^ {2}(?<rcpt>[^\s<>@]+@[^\s<>]+)\n(?<diag>(?: {4}[^\n]*(?:\n|$))+)/gm],
    notices: [
      {
        text: /retry timeout exceeded|retry time not reached for any host after a long failure period|have been failing for a long time/,
        reason: 'expired',
      },
      {
        text: /all relevant mx records point to non-existent hosts|unrouteable mail domain/,
        reason: 'hostunknown',
      },
      { text: /an mx or srv record indicated no smtp service/, reason: 'notaccept' },
      { text: /too many "received" headers - suspected mail loop/, reason: 'networkerror' },
    ],
  },
  {
    name: 'postfix',
    source:
      'Postfix bounce(5) templates and DSN support (www.postfix.org/bounce.5.html, www.postfix.org/DSN_README.html)',
    markers: [['body', /^This is the (?:mail system|Postfix program) at host /m]],
    entries: [
      /^<(?<rcpt>[^\s<>@]+@[^\s<>]+)>(?:\s+\(expanded from\s+<[^>]*>\))?:\s+(?<diag>[^\n]+(?:\n[ \t]+\S[^\n]*)*)/gm,
    ],
    notices: [
      { text: /mail for \S+ loops back to myself/, reason: 'systemerror' },
      {
        text: /host or domain name not found\. name service error for name=\S+ type=\w+: host not found/,
        reason: 'hostunknown',
      },
    ],
  },
  {
    name: 'sendmail',
    source:
      'Sendmail Installation and Operation Guide (sendmail.org, doc/op), its "Returned mail" notices and "Transcript of session follows" section',
    markers: [
      [
        'body',
        /^\s*-{3,} ?(?:Transcript of session follows|The following addresses had permanent fatal errors) ?-{3,}/m,
      ],
    ],
    // The list of failed addresses: each alone on its line, with sendmail's summary of the reply.
    entries: [/^<(?<rcpt>[^\s<>@]+@[^\s<>]+)>[ \t]*(?:\n[ \t]+\(reason: (?<diag>[^\n]*)\))?$/gm],
    replies: [/^>>> RCPT To:\s*<(?<rcpt>[^\s<>@]+@[^\s<>]+)>[^\n]*\n(?<diag>(?:<<< [^\n]*(?:\n|$))+)/gim],
    diagnostic: [/^>>> (?:MAIL From:[^\n]*|DATA|\.)\n(?<diag>(?:<<< [^\n]*(?:\n|$))+)/im],
    strip: /^<<< ?/gm,
  },
  {
    name: 'x6',
    source:
      'An unnamed MTA\'s "There was an error sending your mail" notice, as collected in Sisimai\'s set-of-emails (lhost-x6)',
    markers: [['body', /^We had trouble delivering your message\. Full details follow:/m]],
    entries: [
      /recipients returned permanent errors: (?<rcpt>[^\s<>@]+@[^\s<>]+?)\.?\s+Reason:[^[\n]*\[(?<diag>[^\]\n]+)\]/gi,
    ],
  },
];

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
