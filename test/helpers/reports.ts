/** Report messages as remote servers send them, for tests of the inbound listener. */

/** An RFC 3464 DSN for `recipient`, carrying the headers of an original sent from `returnPath`. */
export function dsnFor(
  recipient: string,
  returnPath: string,
  status = '5.1.1',
  diagnostic = '550 5.1.1 <x>: Recipient address rejected: User unknown',
): string {
  const b = 'dsn-boundary-1';
  return [
    'From: MAILER-DAEMON@mx.dest.test',
    `To: ${returnPath}`,
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${b}"`,
    '',
    `--${b}`,
    'Content-Type: text/plain',
    '',
    'I could not deliver your message.',
    `--${b}`,
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.dest.test',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    'Action: failed',
    `Status: ${status}`,
    `Diagnostic-Code: smtp; ${diagnostic}`,
    '',
    `--${b}`,
    'Content-Type: text/rfc822-headers',
    '',
    `Return-Path: <${returnPath}>`,
    'From: sender@example.com',
    `To: ${recipient}`,
    'Subject: hello',
    '',
    `--${b}--`,
    '',
  ].join('\r\n');
}

/** An RFC 5965 ARF complaint whose embedded original carries `returnPath`. */
export function arfFor(recipient: string, returnPath: string): string {
  const b = 'arf-boundary-1';
  return [
    'From: fbl@isp.test',
    'To: fbl@bounces.localhost',
    'Subject: complaint',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=feedback-report; boundary="${b}"`,
    '',
    `--${b}`,
    'Content-Type: text/plain',
    '',
    'This is an email abuse report.',
    `--${b}`,
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: isp-fbl/1.0',
    'Version: 1',
    `Original-Rcpt-To: ${recipient}`,
    '',
    `--${b}`,
    'Content-Type: message/rfc822',
    '',
    `Return-Path: <${returnPath}>`,
    'From: sender@example.com',
    `To: ${recipient}`,
    'Subject: hello',
    '',
    'body',
    `--${b}--`,
    '',
  ].join('\r\n');
}
