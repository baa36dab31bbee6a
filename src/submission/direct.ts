import { parseAddress, SmtpReplyError, smtpError } from '../shared/index.js';
import type { Account } from '../spool/index.js';
import { blockingEntry } from '../suppression/index.js';
import { acceptData, PAUSED_TEXT, type AcceptCommon } from './accept.js';
import type { AccountLimiter, LimitReason } from './account-limits.js';
import { rfc5322Date } from './message.js';

/** A whole message handed over at once (the HTTP API), with its envelope. */
export interface DirectSubmission {
  readonly account: Account;
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  readonly data: Buffer;
  /** The request id the log names. */
  readonly requestId: string;
  /** The client's address, for the Received: field. */
  readonly remoteAddress: string;
  /** How it came ("HTTPS" or "HTTP"), for the Received: field. */
  readonly protocol: string;
}

/** What became of one recipient: queued, or refused with the reply SMTP would have given. */
export interface RecipientStatus {
  readonly address: string;
  readonly status: 'queued' | 'refused';
  readonly code?: number;
  readonly enhanced?: string;
  readonly reason?: string;
}

export interface DirectResult {
  /** Queue ids of the copies (one, or one per recipient for marketing mail); none if nothing queued. */
  readonly ids: readonly string[];
  readonly recipients: readonly RecipientStatus[];
}

export interface DirectDeps {
  readonly common: Omit<AcceptCommon, 'account' | 'listener'>;
  readonly limiter: AccountLimiter;
  readonly limitText: (account: Account, reason: LimitReason) => Error;
}

const refused = (address: string, err: SmtpReplyError): RecipientStatus => ({
  address,
  status: 'refused',
  code: err.responseCode,
  enhanced: err.enhanced,
  reason: err.message.startsWith(`${err.enhanced} `)
    ? err.message.slice(err.enhanced.length + 1)
    : err.message,
});

/**
 * The checks of an SMTP transaction, in its order: each recipient as RCPT TO checks it (syntax,
 * the guard's pause, suppression, the account's limits), then the message as the end of DATA
 * does. Resolves after the spool commit (fsync); rejects with an SmtpReplyError when the message
 * itself is refused. A recipient refused alone is reported, not thrown.
 */
export async function submitDirect(deps: DirectDeps, input: DirectSubmission): Promise<DirectResult> {
  const { account } = input;
  const { spool, config } = deps.common;
  if (input.data.length > config.max_message_size)
    throw smtpError(552, '5.3.4', `Message exceeds the maximum size of ${config.max_message_size} bytes`);
  if (input.mailFrom !== '' && !parseAddress(input.mailFrom))
    throw smtpError(553, '5.1.7', 'Bad sender address syntax');
  const statuses: RecipientStatus[] = [];
  const admitted: string[] = [];
  const stream = account.defaultStream === 'marketing' ? 'marketing' : null;
  for (const address of input.rcptTo) {
    if (!parseAddress(address)) {
      statuses.push(refused(address, smtpError(553, '5.1.3', 'Bad recipient address syntax')));
      continue;
    }
    if (stream === 'marketing' && deps.common.marketingPaused?.(account.id)) {
      statuses.push(refused(address, smtpError(451, '4.7.1', PAUSED_TEXT)));
      continue;
    }
    const entry = await blockingEntry(spool.suppressions, account.id, address, stream);
    if (entry) {
      statuses.push(refused(address, smtpError(550, '5.7.1', `Recipient is suppressed (${entry.reason})`)));
      continue;
    }
    const limit = await deps.limiter.admit(account);
    if (limit) {
      const err = deps.limitText(account, limit);
      statuses.push(
        refused(address, err instanceof SmtpReplyError ? err : smtpError(451, '4.7.1', err.message)),
      );
      continue;
    }
    admitted.push(address);
    statuses.push({ address, status: 'queued' });
  }
  if (admitted.length === 0) return { ids: [], recipients: statuses };
  const accepted = await acceptData({
    ...deps.common,
    account,
    listener: 'api',
    data: input.data,
    mailFrom: input.mailFrom,
    rcptTo: admitted,
    sessionId: input.requestId,
    received: (id, now) =>
      `Received: from [${input.remoteAddress}]\r\n\tby ${deps.common.hostname} (Petrel) with ${input.protocol} id ${id};\r\n\t${rfc5322Date(now)}\r\n`,
  });
  const dropped = new Map(accepted.unsubscribed.map((u) => [u.address, u.reason]));
  return {
    ids: accepted.ids,
    recipients: statuses.map((s) => {
      const why = dropped.get(s.address);
      return why === undefined || s.status !== 'queued'
        ? s
        : refused(s.address, smtpError(550, '5.7.1', `Recipient is suppressed (${why})`));
    }),
  };
}
