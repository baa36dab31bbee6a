/**
 * Mail providers' formats. They come first in the table: their code tables speak for the replies
 * they give, whoever wrote the bounce.
 */
import type { BounceFormat } from './types.js';

export const PROVIDER_FORMATS: readonly BounceFormat[] = [
  {
    name: 'office365',
    source:
      'Microsoft, "Email non-delivery reports and SMTP errors in Exchange Online" (learn.microsoft.com/exchange/troubleshoot/email-delivery/ndr/non-delivery-reports-in-exchange-online) and "Fix email delivery issues for error codes 5.7.700 through 5.7.750"; on-premises Exchange Server 2007-2019 NDRs share the layout and RESOLVER codes ("DSNs and NDRs in Exchange Server", learn.microsoft.com/exchange/mail-flow/non-delivery-reports-and-bounce-messages/non-delivery-reports-and-bounce-messages)',
    // "Diagnostic information for administrators:" is Exchange's own, on premises and online alike.
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
];
