/** MTAs' own bounce formats, after the providers' and the list managers'. */
import type { BounceFormat } from './types.js';

export const MTA_FORMATS: readonly BounceFormat[] = [
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
    name: 'groupwise',
    source:
      'Novell (Micro Focus) GroupWise Internet Agent "Message status - undeliverable" reports, as collected in Mail::DeliveryStatus::BounceParser\'s corpus (t/corpus/novell-with-rhs.msg, novell-no-rhs.msg) and read by Sympa\'s bounce-lib ("groupwise7")',
    // The GWIA puts its X-Mailer on ordinary mail too, so only the report's own sentence marks it.
    markers: [['body', /^The message that you sent was undeliverable to the following:/m]],
    // One indented line per recipient: the address, then the reason in parentheses.
    entries: [/^[ \t]+(?<rcpt>[^\s<>()@]+@[^\s<>()]+)[ \t]+\((?<diag>[^\n]+)\)[ \t]*$/gm],
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
