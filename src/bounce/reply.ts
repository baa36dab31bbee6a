/** Classifying a synchronous SMTP reply during delivery, with the same rules as bounce messages. */
import { normaliseStatus } from './dsn.js';
import {
  categoryOf,
  findReason,
  type BounceCategory,
  type BounceReason,
  type SmtpCommand,
} from './reason.js';

/** How a remote reply should be treated: category drives suppression, reason is for reporting. */
export interface ReplyClassification {
  readonly category: BounceCategory;
  readonly reason: BounceReason;
  /** The enhanced status given, or one derived from the basic code's class (`5.0.0`, `4.0.0`). */
  readonly status: string | null;
}

/**
 * Classifies one SMTP reply, e.g. `(550, '5.1.1', 'user unknown')` → hard/userunknown.
 * A 2xx reply is `none`/`delivered`; a 4xx reply is never `hard`, whatever its text says.
 * The enhanced code may also be left null and appear at the start of `text`. `command` is the SMTP
 * command the reply answered: "user unknown" after DATA is a content filter's verdict (`filtered`).
 */
export function classifyReply(
  code: number,
  enhanced: string | null,
  text: string,
  command: SmtpCommand = 'RCPT',
): ReplyClassification {
  const klass = Math.floor(code / 100);
  let status = normaliseStatus(enhanced) ?? normaliseStatus(text.slice(0, 20));
  if (status && Number(status[0]) !== klass && (klass === 4 || klass === 5))
    status = `${klass}${status.slice(1)}`;
  if (klass === 2) return { category: 'none', reason: 'delivered', status: status ?? '2.0.0' };
  const action = klass === 4 ? 'delayed' : 'failed';
  const reason = findReason({
    status,
    texts: [`${code} ${status ?? ''} ${text}`],
    action,
    replyCode: code,
    command,
  });
  const effective = status ?? (klass === 4 || klass === 5 ? `${klass}.0.0` : null);
  const category = klass === 4 || klass === 5 ? categoryOf(reason, effective, action) : 'none';
  return { category, reason: klass === 4 && reason === 'onhold' ? 'undefined' : reason, status: effective };
}
