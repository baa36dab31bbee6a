import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { classifyMessage } from '../../../src/bounce/index.js';
import { buildDsn, type DsnInput } from '../../../src/queue/index.js';

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

function input(address: string, original: string): DsnInput {
  return {
    reportingMta: 'petrel.test',
    originalMessageId: 'q1',
    originalMailFrom: 'sender@example.com',
    originalAccountId: 1,
    arrivalDate: NOW - 60_000,
    recipients: [
      {
        address,
        action: 'failed',
        status: '5.6.7',
        reply: {
          code: 553,
          enhanced: '5.6.7',
          text: 'recipient address needs SMTPUTF8, which mx.test does not support',
        },
        mx: 'mx.test',
        lastAttemptAt: NOW,
      },
    ],
    original: Buffer.from(original, 'utf8'),
    now: NOW,
  };
}

const ORIGINAL =
  'From: Ann <sender@example.com>\r\nTo: 用户@例子.广告\r\nSubject: Grüße\r\n' +
  'Message-ID: <m1@example.com>\r\nX-Petrel-Token: t1\r\n\r\nKöln\r\n';

describe('DSN', () => {
  it('is 7-bit for a UTF-8 recipient and 8-bit returned headers, and readable by mailparser and the classifier', async () => {
    const dsn = buildDsn(input('用户@例子.广告', ORIGINAL))!;
    expect(dsn.body.every((b) => b < 0x80)).toBe(true);
    for (const line of dsn.body.toString('latin1').split('\r\n'))
      expect(line.length).toBeLessThanOrEqual(998);
    const text = dsn.body.toString('latin1');
    // RFC 6533: a UTF-8 address in message/delivery-status is the utf-8 type in xtext form.
    expect(text).toContain(
      'Final-Recipient: utf-8; \\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.\\x{5E7F}\\x{544A}\r\n',
    );

    const parsed = await simpleParser(dsn.body);
    expect(parsed.text).toContain('<用户@例子.广告>: was refused by mx.test');
    expect(parsed.text).toContain('Status: 5.6.7');
    const headers = parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers');
    expect(headers?.content.toString('utf8')).toBe(ORIGINAL.slice(0, ORIGINAL.indexOf('\r\n\r\n') + 2));

    const reading = classifyMessage(dsn.body);
    expect(reading.kind).toBe('dsn');
    expect(reading.results).toMatchObject([
      { recipient: '用户@例子.广告', status: '5.6.7', action: 'failed' },
    ]);
    expect(reading.originalHeaders).toMatchObject({
      'message-id': '<m1@example.com>',
      'x-petrel-token': 't1',
    });
  });

  it('uses the rfc822 address type and 7bit parts for an ASCII report', () => {
    const dsn = buildDsn(input('bob@dest.test', 'From: sender@example.com\r\nSubject: hi\r\n\r\nhi\r\n'))!;
    const text = dsn.body.toString('latin1');
    expect(text).toContain('Final-Recipient: rfc822; bob@dest.test\r\n');
    expect(text).not.toContain('quoted-printable');
    expect(text).toContain(
      'Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 7bit\r\n\r\nFrom: sender@example.com\r\n',
    );
  });

  it('warns of a delay: action delayed, a transient status, and until when delivery is retried', async () => {
    const base = input('bob@dest.test', 'From: sender@example.com\r\nSubject: hi\r\n\r\nhi\r\n');
    const until = NOW + 3 * 86_400_000;
    const dsn = buildDsn({
      ...base,
      recipients: [
        {
          address: 'bob@dest.test',
          action: 'delayed',
          status: '4.2.1',
          reply: { code: 451, enhanced: '4.2.1', text: 'Mailbox busy' },
          mx: 'mx.test',
          lastAttemptAt: NOW,
          willRetryUntil: until,
        },
        // A deferral whose reply carries a permanent code is still only delayed.
        {
          address: 'ann@dest.test',
          action: 'delayed',
          status: '5.7.1',
          reply: { code: 421, enhanced: '5.7.1', text: 'odd' },
          mx: 'mx.test',
          lastAttemptAt: NOW,
          willRetryUntil: until,
        },
      ],
    })!;
    const text = dsn.body.toString('latin1');
    expect(text).toContain('Subject: Delayed Mail (still being retried)\r\n');
    expect(text).toContain('Final-Recipient: rfc822; bob@dest.test\r\nAction: delayed\r\nStatus: 4.2.1\r\n');
    expect(text).toContain('Final-Recipient: rfc822; ann@dest.test\r\nAction: delayed\r\nStatus: 4.0.0\r\n');
    expect(text).toContain('Will-Retry-Until: Fri, 04 Dec 2026 12:00:00 +0000\r\n');
    expect(text).not.toContain('Undelivered');
    const parsed = await simpleParser(dsn.body);
    expect(parsed.text).toContain('This is a warning only');
    expect(classifyMessage(dsn.body).results).toMatchObject([
      { recipient: 'bob@dest.test', status: '4.2.1', action: 'delayed' },
      { recipient: 'ann@dest.test', action: 'delayed' },
    ]);
  });
});
