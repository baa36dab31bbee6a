import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { SubmissionConfig } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import type { Account, Spool } from '../spool/index.js';
import { SpoolError, domainMatches, parseAddress, smtpError, type Clock } from '../shared/index.js';
import { blockingEntry } from '../suppression/index.js';
import {
  checkLineEndings,
  extractAddresses,
  headerValue,
  isProblem,
  normalizeMessage,
  parseMessage,
  rfc5322Date,
} from './message.js';

export interface AcceptInput {
  readonly stream: SMTPServerDataStream;
  readonly session: SMTPServerSession;
  readonly listener: string;
  /** The sending account as MAIL FROM found it; null when there was none. */
  readonly account: Account | null;
  readonly config: SubmissionConfig;
  readonly hostname: string;
  readonly spool: Spool;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly sign: ((message: Buffer, fromDomain: string) => Promise<{ header: Buffer; aligned: boolean } | null>) | undefined;
  readonly requireSignature: boolean;
  /** List-Unsubscribe and List-Unsubscribe-Post fields for one marketing recipient. */
  readonly unsubscribeHeaders: ((accountId: number, address: string) => Promise<string[]>) | undefined;
}

/**
 * Reads one message, checks it, normalizes it and makes it durable. Resolves with the queue id
 * only after the spool commit (fsync); rejects with an SmtpReplyError for the client otherwise.
 */
export async function acceptMessage(input: AcceptInput): Promise<string> {
  const { stream, session, config, spool, logger } = input;
  const data = await readLimited(stream, config.max_message_size);
  if (data === null) {
    throw smtpError(552, '5.3.4', `Message exceeds the maximum size of ${config.max_message_size} bytes`);
  }
  const ending = checkLineEndings(data, config.max_line_length);
  if (ending) throw smtpError(ending.code, ending.enhanced, ending.text);
  const parsed = parseMessage(data, {
    maxLineLength: config.max_line_length,
    maxHeaderSize: config.max_header_size,
    maxReceivedHeaders: config.max_received_headers,
  });
  if (isProblem(parsed)) throw smtpError(parsed.code, parsed.enhanced, parsed.text);

  const { account } = input;
  if (!account) throw smtpError(451, '4.3.0', 'Sending account is not available');
  const fromFields = parsed.headers.filter((h) => h.name === 'from');
  if (fromFields.length !== 1) throw smtpError(554, '5.6.0', 'Message must have exactly one From header');
  const fromAddresses = extractAddresses(headerValue(fromFields[0]!));
  if (fromAddresses.length === 0) throw smtpError(554, '5.6.0', 'From header has no address');
  const fromDomains: string[] = [];
  for (const addr of fromAddresses) {
    const domain = parseAddress(addr)?.domain;
    if (!domain || !account.allowedDomains.some((d) => domainMatches(domain, d))) {
      throw smtpError(550, '5.7.1', 'From: domain not allowed for this account');
    }
    fromDomains.push(domain);
  }

  const streamFields = parsed.headers.filter((h) => h.name === 'x-petrel-stream');
  const streamValue = streamFields.length > 0 ? headerValue(streamFields[0]!).toLowerCase() : account.defaultStream;
  if (streamValue !== 'transactional' && streamValue !== 'marketing') {
    throw smtpError(554, '5.6.0', 'X-Petrel-Stream must be transactional or marketing');
  }
  const messageStream: 'transactional' | 'marketing' = streamValue;

  const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
  const recipients: { address: string; domain: string }[] = [];
  let unsubscribed: string | null = null;
  for (const r of session.envelope.rcptTo) {
    // Unsubscribes stop marketing mail; RCPT could not know the stream of this message yet.
    const entry = messageStream === 'marketing' ? await blockingEntry(spool.suppressions, account.id, r.address, 'marketing') : null;
    if (entry) unsubscribed = entry.reason;
    else recipients.push({ address: r.address, domain: parseAddress(r.address)!.domain });
  }
  if (recipients.length === 0) throw smtpError(550, '5.7.1', `All recipients are suppressed (${unsubscribed ?? 'suppressed'})`);
  // Marketing mail carries a List-Unsubscribe link for its one recipient, so each recipient gets
  // its own copy (and signature); the copies share one group commit.
  const perRecipient =
    messageStream === 'marketing' && input.unsubscribeHeaders !== undefined && !parsed.headers.some((h) => h.name === 'list-unsubscribe');
  const units = perRecipient ? recipients.map((r) => [r]) : [recipients];
  const now = new Date(input.clock.now());
  const prepared = await Promise.all(
    units.map(async (unitRecipients) => {
      const id = spool.messages.newId();
      const extraHeaders = perRecipient ? await input.unsubscribeHeaders!(account.id, unitRecipients[0]!.address) : [];
      const normalized = normalizeMessage({
        parsed,
        receivedHeader: receivedHeader(session, input.hostname, id, now),
        hostname: input.hostname,
        queueId: id,
        now,
        extraHeaders,
      });
      const signature = input.sign ? await input.sign(normalized.data, fromDomains[0]!) : null;
      if (!signature?.aligned && input.requireSignature) {
        throw smtpError(550, '5.7.1', 'No DKIM key for the From: domain, and signing is required');
      }
      const stored = signature ? Buffer.concat([signature.header, normalized.data]) : normalized.data;
      return { id, unitRecipients, normalized, stored, signed: signature?.aligned ?? false };
    }),
  );
  if (input.sign && !prepared[0]!.signed) {
    logger.warn({ sessionId: session.id, msgId: prepared[0]!.id, domain: fromDomains[0] }, 'no DKIM key for the From: domain; not signed as that domain');
  }
  try {
    await Promise.all(
      prepared.map((p) =>
        spool.messages.insert(p.id, {
          accountId: account.id,
          mailFrom,
          recipients: p.unitRecipients,
          headerMessageId: p.normalized.messageId,
          body: p.stored,
          listener: input.listener,
          stream: messageStream,
        }),
      ),
    );
  } catch (err) {
    logger.error({ sessionId: session.id, err }, 'spool write failed');
    if (err instanceof SpoolError && err.code === 'PETREL_SPOOL_FULL') {
      throw smtpError(452, '4.3.1', 'Insufficient system storage, try again later');
    }
    throw smtpError(451, '4.3.0', 'Temporary storage failure, try again later');
  }
  for (const p of prepared) {
    logger.info(
      {
        event: 'reception',
        msgId: p.id,
        sessionId: session.id,
        listener: input.listener,
        account: account.name,
        stream: messageStream,
        recipients: p.unitRecipients.length,
        size: p.stored.length,
        signed: p.signed,
      },
      'message queued',
    );
  }
  const id = prepared[0]!.id;
  const more = prepared.length - 1;
  return more > 0 ? `${id} (+${more} more, one per recipient)` : id;
}


/**
 * Collects the DATA stream, keeping at most `limit` bytes. Resolves null when the message was
 * larger, after the whole stream has been read (the client must reach its final dot first).
 */
function readLimited(stream: SMTPServerDataStream, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    stream.once('end', () => resolve(size > limit || stream.sizeExceeded ? null : Buffer.concat(chunks, size)));
    stream.once('error', reject);
  });
}

const SAFE_HELO = /[^A-Za-z0-9.\-[\]:_]/g;

function receivedHeader(session: SMTPServerSession, hostname: string, id: string, now: Date): string {
  const helo = (session.hostNameAppearsAs || 'unknown').replace(SAFE_HELO, '').slice(0, 255) || 'unknown';
  const client = session.clientHostname || `[${session.remoteAddress}]`;
  const ip = session.remoteAddress;
  const clientPart = client.includes(ip) ? client : `${client} [${ip}]`;
  return (
    `Received: from ${helo} (${clientPart})\r\n` +
    `\tby ${hostname} (Petrel) with ${session.transmissionType || 'ESMTP'} id ${id};\r\n` +
    `\t${rfc5322Date(now)}\r\n`
  );
}
