/** An SMTP reply as seen on the wire: basic code, enhanced status (RFC 3463) and text. */
export interface SmtpReply {
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

/** An error carrying an SMTP reply for smtp-server callbacks (`responseCode` is its contract). */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  readonly enhanced: string;

  constructor(code: number, enhanced: string, text: string) {
    // smtp-server writes `code message`; enhanced status codes are part of our text.
    super(`${enhanced} ${text}`);
    this.name = 'SmtpReplyError';
    this.responseCode = code;
    this.enhanced = enhanced;
  }
}

/** Shorthand for the reply errors used at the SMTP edge. */
export function smtpError(code: number, enhanced: string, text: string): SmtpReplyError {
  return new SmtpReplyError(code, enhanced, text);
}
