/**
 * One sample per MTA / provider format, written from that format's documentation (see the
 * `source` of each entry in src/bounce/formats.ts), with the reading the documentation implies.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  classifyMessage,
  formatReason,
  formatsOf,
  FORMATS,
  noticeReason,
  parseMime,
  unwrapReply,
  type BounceFormat,
} from '../../../src/bounce/index.js';

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../../../fixtures/bounces/formats/${name}`, import.meta.url));

type Row = readonly [recipient: string, status: string, category: string, reason: string];

/** Format name → its samples and the rows each must read as. */
const SAMPLES: Readonly<Record<string, readonly (readonly [file: string, rows: readonly Row[]])[]>> = {
  office365: [
    ['office365-dns-query-failed.eml', [['alice@fabrikam.example', '5.4.312', 'soft', 'networkerror']]],
    [
      'office365-access-denied.eml',
      [
        ['bob@fabrikam.example', '5.4.1', 'hard', 'userunknown'],
        ['carol@fabrikam.example', '5.7.708', 'soft', 'blocked'],
      ],
    ],
    [
      'office365-resolver.eml',
      [
        ['sam@contoso.example', '5.2.2', 'soft', 'mailboxfull'],
        ['team@contoso.example', '5.7.1', 'soft', 'rejected'],
      ],
    ],
    // Exchange Server 2007-2019 on premises: the same NDR layout, read by the same entry.
    [
      'exchange-legacy-resolver.eml',
      [
        ['kim@contoso.example', '5.1.1', 'hard', 'userunknown'],
        ['lee@fabrikam.example', '5.2.2', 'soft', 'mailboxfull'],
      ],
    ],
  ],
  'outlook.com': [
    [
      'outlook-com-blocked.eml',
      [
        ['quinn@hotmail.example', '5.0.0', 'soft', 'blocked'],
        ['rita@hotmail.example', '4.0.0', 'soft', 'speeding'],
      ],
    ],
  ],
  yahoo: [
    [
      'yahoo-rejections.eml',
      [
        ['tom@yahoo.example', '5.0.0', 'soft', 'mailboxfull'],
        ['uma@yahoo.example', '5.0.0', 'soft', 'suspend'],
      ],
    ],
  ],
  messagelabs: [['messagelabs-badmailfrom.eml', [['vera@example.com', '5.7.1', 'soft', 'rejected']]]],
  domino: [['domino-not-listed.eml', [['walt@notes.example.com', '5.0.0', 'hard', 'userunknown']]]],
  groupwise: [
    [
      'groupwise-undeliverable.eml',
      [
        ['quincy@example.org', '5.0.0', 'hard', 'userunknown'],
        ['rhea@example.org', '5.0.0', 'soft', 'suspend'],
      ],
    ],
  ],
  google: [
    ['google-security-issue.eml', [['dave@gmail.example', '5.7.0', 'soft', 'policyviolation']]],
    ['google-groups-spam.eml', [['team@groups.example.com', '5.0.0', 'soft', 'spamdetected']]],
  ],
  powermta: [['powermta-inactive-mailbox.eml', [['erin@example.org', '5.0.0', 'soft', 'suspend']]]],
  verizon: [['verizon-no-such-user.eml', [['5550100@vtext.com', '5.0.0', 'hard', 'userunknown']]]],
  fml: [['fml-not-member.eml', [['cats@lists.example.jp', '5.0.0', 'soft', 'rejected']]]],
  qmail: [
    [
      'qmail-qsbmf.eml',
      [
        ['frank@nowhere.example', '5.1.2', 'hard', 'hostunknown'],
        ['grace@example.org', '5.1.1', 'hard', 'userunknown'],
      ],
    ],
  ],
  exim: [
    [
      'exim-mx-nonexistent.eml',
      [
        ['heidi@example.net', '5.2.2', 'soft', 'mailboxfull'],
        ['ivan@broken.example', '5.0.0', 'hard', 'hostunknown'],
      ],
    ],
  ],
  postfix: [
    [
      'postfix-text-only.eml',
      [
        ['judy@example.net', '5.1.1', 'hard', 'userunknown'],
        ['ken@example.org', '5.3.4', 'soft', 'mesgtoobig'],
      ],
    ],
  ],
  sendmail: [
    [
      'sendmail-transcript.eml',
      [
        ['leo@example.net', '5.7.1', 'soft', 'spamdetected'],
        ['mia@example.net', '5.7.1', 'soft', 'spamdetected'],
      ],
    ],
    [
      'sendmail-rcpt-and-data.eml',
      [
        ['xena@example.net', '5.1.1', 'hard', 'userunknown'],
        ['yuri@example.net', '5.7.1', 'soft', 'policyviolation'],
      ],
    ],
  ],
  x6: [['x6-trouble-delivering.eml', [['nina@example.org', '5.1.1', 'hard', 'userunknown']]]],
};

describe('bounce formats', () => {
  it('has a documented sample for every format in the table', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(FORMATS.map((f) => f.name).sort());
    for (const f of FORMATS) expect(f.source.length, f.name).toBeGreaterThan(20);
  });

  for (const [name, samples] of Object.entries(SAMPLES)) {
    for (const [file, rows] of samples) {
      it(`recognises ${file} as ${name} and reads each recipient`, () => {
        const raw = fixture(file);
        expect(formatsOf(parseMime(raw)).map((f) => f.name)).toContain(name);
        const reading = classifyMessage(raw);
        expect(reading.kind).toBe('dsn');
        expect(reading.results.map((r) => [r.recipient, r.status, r.category, r.reason])).toEqual(rows);
      });
    }
  }

  it("keeps GroupWise's reason beside each recipient as its diagnostic", () => {
    const reading = classifyMessage(fixture('groupwise-undeliverable.eml'));
    expect(reading.results.map((r) => r.diagnostic)).toEqual(['user not found', 'User account is expired']);
  });

  it('does not take an ordinary mailing-list post for an fml notice', () => {
    const post = Buffer.from(
      [
        'From: member@example.net',
        'To: cats@lists.example.jp',
        'Subject: [cats:00123] hello',
        'Message-Id: <20251108.member@example.net>',
        'X-MLServer: fml [fml 4.0.3 release (20011202/4.0.3)]',
        '',
        'See you at <meeting@example.jp> tomorrow.',
        '',
      ].join('\n'),
    );
    expect(formatsOf(parseMime(post))).toEqual([]);
    expect(classifyMessage(post).kind).toBe('none');
  });

  it('reads a bounce pasted under a helpdesk notice by its own delivery-status fields', () => {
    const reading = classifyMessage(fixture('pasted-postfix-bounce.eml'));
    expect(reading.results.map((r) => [r.recipient, r.status, r.category, r.reason])).toEqual([
      ['paul@example.net', '4.4.1', 'soft', 'expired'],
    ]);
    expect(reading.originalHeaders['return-path']).toBe('<bounce-token@bounces.example.jp>');
  });

  it('reports the cause behind an expiry when the DSN quotes the last reply', () => {
    const raw = Buffer.from(
      [
        'From: MAILER-DAEMON@mta.example.com',
        'To: sender@example.com',
        'Subject: Delivery Status Notification (Failure)',
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        '',
        '--b',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; mta.example.com',
        '',
        'Final-Recipient: rfc822; olga@example.org',
        'Action: failed',
        'Status: 4.4.7',
        'Diagnostic-Code: smtp; 554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.2 Connection timed out>',
        '',
        '--b--',
        '',
      ].join('\n'),
    );
    expect(classifyMessage(raw).results[0]).toMatchObject({
      recipient: 'olga@example.org',
      status: '4.4.2',
      reason: 'expired',
      category: 'soft',
    });
  });
});

describe('format code tables', () => {
  const table: BounceFormat = {
    name: 'test',
    source: 'a table made up for this test',
    markers: [['body', /./]],
    codes: [
      { status: '5.7.606-649', reason: 'blocked' },
      { status: '5.4.', text: /dns query failed/, reason: 'networkerror' },
    ],
    notices: [{ text: /gave up/, reason: 'expired' }],
    categoryField: { name: 'x-test-category', values: { 'bad-mailbox': 'userunknown' } },
  };

  it('matches a status range, a status prefix with a phrase, and nothing else', () => {
    expect(formatReason([table], '5.7.620', [''])).toBe('blocked');
    expect(formatReason([table], '5.7.650', [''])).toBeNull();
    expect(formatReason([table], '5.4.312', ['550 5.4.312 DNS  query\nfailed'])).toBe('networkerror');
    expect(formatReason([table], '5.4.312', ['550 5.4.312 connection refused'])).toBeNull();
  });

  it('prefers the MTA classification field of the DSN group', () => {
    expect(formatReason([table], '5.7.620', [''], { 'x-test-category': 'Bad-Mailbox' })).toBe('userunknown');
  });

  it('keeps the MTA notices apart from the reply codes', () => {
    expect(formatReason([table], null, ['I gave up'])).toBeNull();
    expect(noticeReason([table], null, ['I gave up'])).toBe('expired');
  });

  it('drops the codes a flattened multi-line reply repeats', () => {
    expect(
      unwrapReply(
        '552-5.7.0 This message was blocked because its content presents a potential 552-5.7.0 security issue.',
      ),
    ).toBe('552-5.7.0 This message was blocked because its content presents a potential security issue.');
    expect(unwrapReply('550 5.1.1 user unknown')).toBe('550 5.1.1 user unknown');
  });
});
