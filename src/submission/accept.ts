import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { SubmissionConfig } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import type { Spool } from '../spool/index.js';
import { SpoolError, domainMatches, parseAddress, smtpError, type Clock } from '../shared/index.js';
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
  readonly accountName: string;
  readonly accountId: number | null;
  readonly config: SubmissionConfig;
  readonly hostname: string;
  readonly spool: Spool;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly sign: ((message: Buffer, fromDomain: string) => Promise<Buffer | null>) | undefined;
  readonly requireSignature: boolean;
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

  const account = await spool.accounts.get(input.accountName);
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

  const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
  const recipients = session.envelope.rcptTo.map((r) => ({
    address: r.address,
    domain: parseAddress(r.address)!.domain,
  }));
  const id = spool.messages.newId();
  const now = new Date(input.clock.now());
  const normalized = normalizeMessage({
    parsed,
    receivedHeader: receivedHeader(session, input.hostname, id, now),
    hostname: input.hostname,
    queueId: id,
    now,
  });
  const signature = input.sign ? await input.sign(normalized.data, fromDomains[0]!) : null;
  if (!signature) {
    if (input.requireSignature) throw smtpError(550, '5.7.1', 'No DKIM key for the From: domain, and signing is required');
    logger.warn({ sessionId: session.id, msgId: id, domain: fromDomains[0] }, 'no DKIM key for the From: domain; sending unsigned');
  }
  const stored = signature ? Buffer.concat([signature, normalized.data]) : normalized.data;
  try {
    await spool.messages.insert(id, {
      accountId: account.id,
      mailFrom,
      recipients,
      headerMessageId: normalized.messageId,
      body: stored,
      listener: input.listener,
    });
  } catch (err) {
    logger.error({ sessionId: session.id, err }, 'spool write failed');
    if (err instanceof SpoolError && err.code === 'PETREL_SPOOL_FULL') {
      throw smtpError(452, '4.3.1', 'Insufficient system storage, try again later');
    }
    throw smtpError(451, '4.3.0', 'Temporary storage failure, try again later');
  }
  logger.info(
    {
      event: 'reception',
      msgId: id,
      sessionId: session.id,
      listener: input.listener,
      account: account.name,
      recipients: recipients.length,
      size: stored.length,
      signed: signature !== null,
    },
    'message queued',
  );
  return id;
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
