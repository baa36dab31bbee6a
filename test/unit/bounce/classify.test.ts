import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyMessage } from '../../../src/bounce/index.js';

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../../../fixtures/bounces/${name}`, import.meta.url));

function read(name: string): { kind: string; rows: Record<string, unknown>[] } {
  const r = classifyMessage(fixture(name));
  return {
    kind: r.kind,
    rows: r.results.map(({ recipient, status, category, reason, action, feedbackType }) => ({
      recipient,
      status,
      category,
      reason,
      action,
      feedbackType,
    })),
  };
}

describe('classifyMessage on sample bounces', () => {
  it('reads a Postfix RFC 3464 DSN', () => {
    expect(read('lhost-postfix-14.eml')).toEqual({
      kind: 'dsn',
      rows: [
        {
          recipient: 'kijitora@2jo.example.jp',
          status: '5.1.1',
          category: 'hard',
          reason: 'userunknown',
          action: 'failed',
          feedbackType: null,
        },
      ],
    });
  });

  it('reads a Sendmail DSN with its diagnostic and reply code', () => {
    const r = classifyMessage(fixture('lhost-sendmail-01.eml'));
    expect(r.results).toHaveLength(1);
    expect(r.results[0]).toMatchObject({
      recipient: 'userunknown@bouncehammer.jp',
      status: '5.1.1',
      replyCode: 550,
      reason: 'userunknown',
    });
    expect(r.results[0]!.diagnostic).toContain('User Unknown');
  });

  it('reads both recipients of an Exim bounce', () => {
    const { kind, rows } = read('lhost-exim-02.eml');
    expect(kind).toBe('dsn');
    expect(rows.map((r) => [r['recipient'], r['status'], r['reason']])).toEqual([
      ['kijitora@example.jp', '5.1.1', 'userunknown'],
      ['sabatora@example.jp', '5.2.1', 'userunknown'],
    ]);
  });

  it('reads a qmail bounce: a full mailbox is soft', () => {
    expect(read('lhost-qmail-06.eml').rows).toEqual([
      {
        recipient: 'kijitora@example.jp',
        status: '4.2.2',
        category: 'soft',
        reason: 'mailboxfull',
        action: 'failed',
        feedbackType: null,
      },
    ]);
  });

  it('reads an Office 365 bounce in LF and CRLF form alike', () => {
    const lf = read('lhost-office365-01.eml');
    const crlf = classifyMessage(
      Buffer.from(fixture('lhost-office365-01.eml').toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'),
    );
    expect(lf.rows[0]).toMatchObject({
      recipient: 'kijitora@example.com',
      status: '5.1.10',
      reason: 'userunknown',
      category: 'hard',
    });
    expect(crlf.results[0]).toMatchObject({
      recipient: 'kijitora@example.com',
      status: '5.1.10',
      reason: 'userunknown',
    });
  });

  it('reads a delay warning as expired, not hard', () => {
    expect(read('lhost-gmail-08.eml').rows[0]).toMatchObject({
      recipient: 'kijitora@example.com',
      reason: 'expired',
      action: 'delayed',
      category: 'soft',
    });
  });

  it('reads an Amazon SES bounce notification', () => {
    expect(read('lhost-amazonses-09.eml').rows[0]).toMatchObject({
      recipient: 'bounce@simulator.amazonses.com',
      status: '5.1.1',
      reason: 'userunknown',
    });
  });

  it('exposes the original message headers for VERP mapping', () => {
    expect(classifyMessage(fixture('lhost-postfix-14.eml')).originalHeaders).toMatchObject({
      'return-path': '<root@2jo.example.jp>',
      'message-id': '<20150213024813.DE9FF20C16@2jo.example.jp>',
    });
  });
});

describe('classifyMessage on complaints and auto-replies', () => {
  it('takes the complained-about recipient from Original-Rcpt-To', () => {
    expect(read('arf-14.eml')).toEqual({
      kind: 'arf',
      rows: [
        {
          recipient: 'kijitora@y.example.com',
          status: null,
          category: 'complaint',
          reason: 'feedback',
          action: null,
          feedbackType: 'abuse',
        },
      ],
    });
  });

  it('reports every Original-Rcpt-To of a complaint', () => {
    expect(read('arf-17.eml').rows.map((r) => r['recipient'])).toEqual([
      'kijitora@example.com',
      'sabatora@example.net',
    ]);
  });

  it('falls back to the embedded original To and keeps the feedback type', () => {
    expect(read('arf-20.eml').rows[0]).toMatchObject({
      recipient: 'kijitora@example.org',
      feedbackType: 'auth-failure',
    });
  });

  it('recognises RFC 3834 and Exchange auto-replies and does not count them as bounces', () => {
    expect(read('rfc3834-01.eml')).toMatchObject({
      kind: 'autoreply',
      rows: [{ recipient: 'kijitora@example.net', category: 'none', reason: 'vacation' }],
    });
    expect(read('rfc3834-02.eml')).toMatchObject({
      kind: 'autoreply',
      rows: [{ recipient: 'nekonyaan@example.org' }],
    });
  });

  it('reads an ordinary message as not a bounce', () => {
    expect(read('is-not-bounce-02.eml')).toEqual({ kind: 'none', rows: [] });
  });
});
