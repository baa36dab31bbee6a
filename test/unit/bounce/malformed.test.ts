import { describe, expect, it } from 'vitest';
import { classifyMessage } from '../../../src/bounce/index.js';

const msg = (text: string): Buffer => Buffer.from(text.replace(/\n/g, '\r\n'));
const DSN_HEAD = 'From: MAILER-DAEMON@example.net\nSubject: Undelivered Mail Returned to Sender\n';

function report(fields: string, reportType = '; report-type=delivery-status'): Buffer {
  return msg(
    `${DSN_HEAD}Content-Type: multipart/report${reportType}; boundary="b"\n\n--b\nContent-Type: text/plain\n\nDelivery failed.\n` +
      `--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n${fields}\n--b--\n`,
  );
}

describe('classifyMessage on malformed input', () => {
  it('reads a DSN without report-type', () => {
    const r = classifyMessage(
      report('Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1', ''),
    );
    expect(r.results[0]).toMatchObject({
      kind: 'dsn',
      recipient: 'a@example.com',
      status: '5.1.1',
      category: 'hard',
    });
  });

  it('gives no recipient when Final-Recipient is missing rather than guessing', () => {
    const r = classifyMessage(
      report('Action: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 mailbox full'),
    );
    expect(r.kind).toBe('dsn');
    expect(r.results[0]).toMatchObject({ recipient: null, status: '5.2.2', reason: 'mailboxfull' });
  });

  it('treats "Status: 550" as a reply code, not a status', () => {
    const r = classifyMessage(report('Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 550'));
    expect(r.results[0]).toMatchObject({ recipient: 'a@example.com', replyCode: 550, status: '5.0.0' });
  });

  it('gives no recipient for a malformed Final-Recipient with nothing else to go on', () => {
    const r = classifyMessage(report('Final-Recipient: rfc822; @example.com\nAction: failed\nStatus: 5.1.1'));
    expect(r.results[0]?.recipient).toBeNull();
  });

  it('handles 10 000 nested multipart levels quickly', () => {
    let body = '';
    for (let i = 0; i < 10_000; i++)
      body += `--b${i}\nContent-Type: multipart/mixed; boundary="b${i + 1}"\n\n`;
    const started = Date.now();
    const r = classifyMessage(msg(`${DSN_HEAD}Content-Type: multipart/mixed; boundary="b0"\n\n${body}`));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(['dsn', 'none']).toContain(r.kind);
  });

  it('handles a 50 MiB part quickly', () => {
    const huge = `${DSN_HEAD}Content-Type: multipart/mixed; boundary="x"\n\n--x\nContent-Type: text/plain\n\n${'a'.repeat(50 * 1024 * 1024)}\n--x--\n`;
    const started = Date.now();
    expect(() => classifyMessage(Buffer.from(huge))).not.toThrow();
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('never throws on garbage', () => {
    const inputs = [
      '',
      '\n\n',
      'garbage',
      'Content-Type: multipart/report\n\n--',
      '\u0000\u00ff'.repeat(1000),
      'Content-Type: message/rfc822\n\n'.repeat(50),
    ];
    for (const input of inputs) expect(() => classifyMessage(Buffer.from(input, 'latin1'))).not.toThrow();
  });
});
