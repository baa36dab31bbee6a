import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { SubmissionConfig } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import type { Account, NewMessage, Spool } from '../spool/index.js';
import {
  SpoolError,
  domainMatches,
  parseAddress,
  smtpError,
  type Clock,
  type SmtpReplyError,
} from '../shared/index.js';
import { mentionedAddresses } from '../privacy/index.js';
import { blockingEntry } from '../suppression/index.js';
import {
  checkLineEndings,
  extractAddresses,
  headerValue,
  isProblem,
  normalizeMessage,
  parseMessage,
  rfc5322Date,
  type HeaderField,
} from './message.js';

/** What a paused account's marketing mail is told: try later, once the operator lifted it. */
export const PAUSED_TEXT =
  'Marketing mail of this account is paused (complaint or bounce rate); try again later';

export interface AcceptInput extends AcceptCommon {
  readonly stream: SMTPServerDataStream;
  readonly session: SMTPServerSession;
}

/** What a message is accepted with, whatever it came in by (SMTP or HTTP). */
export interface AcceptCommon {
  readonly listener: string;
  /** The sending account as MAIL FROM found it; null when there was none. */
  readonly account: Account | null;
  readonly config: SubmissionConfig;
  readonly hostname: string;
  readonly spool: Spool;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly sign:
    | ((message: Buffer, fromDomain: string) => Promise<{ header: Buffer; aligned: boolean } | null>)
    | undefined;
  readonly requireSignature: boolean;
  /** List-Unsubscribe and List-Unsubscribe-Post fields for one marketing recipient. */
  readonly unsubscribeHeaders: ((accountId: number, address: string) => Promise<string[]>) | undefined;
  readonly marketingPaused: ((accountId: number) => boolean) | undefined;
}

/** A message, its envelope, and how it came (for its Received: field and the log). */
export interface AcceptDataInput extends AcceptCommon {
  readonly data: Buffer;
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** The session or request id the log names. */
  readonly sessionId: string;
  /** The Received: field for queue id `id`, CRLF-terminated. */
  readonly received: (id: string, now: Date) => string;
}

/** The queued copies (one, or one per recipient for marketing mail) and who was left out. */
export interface Accepted {
  readonly ids: readonly string[];
  readonly recipients: readonly string[];
  /** Recipients dropped because they unsubscribed from marketing mail, with the reason. */
  readonly unsubscribed: readonly { readonly address: string; readonly reason: string }[];
}

/**
 * Reads one message, checks it, normalizes it and makes it durable. Resolves with the queue id
 * only after the spool commit (fsync); rejects with an SmtpReplyError for the client otherwise.
 */
export async function acceptMessage(input: AcceptInput): Promise<string> {
  const { stream, session, config } = input;
  const data = await readLimited(stream, config.max_message_size);
  if (data === null) {
    throw smtpError(552, '5.3.4', `Message exceeds the maximum size of ${config.max_message_size} bytes`);
  }
  const accepted = await acceptData({
    ...input,
    data,
    mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
    sessionId: session.id,
    received: (id, now) => receivedHeader(session, input.hostname, id, now),
  });
  const id = accepted.ids[0]!;
  const more = accepted.ids.length - 1;
  return more > 0 ? `${id} (+${more} more, one per recipient)` : id;
}

/**
 * Checks a whole message, normalizes it and makes it durable; resolves only after the spool
 * commit (fsync). Rejects with an SmtpReplyError, whose code and text the caller passes on.
 */
export async function acceptData(input: AcceptDataInput): Promise<Accepted> {
  const { data, config, spool, logger, sessionId } = input;
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
  const fromDomains = authorDomains(fromFields[0]!, 'From', account);
  const senderFields = parsed.headers.filter((h) => h.name === 'sender');
  if (senderFields.length > 1) throw smtpError(554, '5.6.0', 'Message must have at most one Sender header');
  // Receivers show Sender: and Resent-* as who sent the mail: they bind the account like From:.
  for (const field of parsed.headers) {
    const label = AUTHOR_FIELDS[field.name];
    if (label && field.name !== 'from') authorDomains(field, label, account);
  }

  const streamFields = parsed.headers.filter((h) => h.name === 'x-petrel-stream');
  const streamValue =
    streamFields.length > 0 ? headerValue(streamFields[0]!).toLowerCase() : account.defaultStream;
  if (streamValue !== 'transactional' && streamValue !== 'marketing') {
    throw smtpError(554, '5.6.0', 'X-Petrel-Stream must be transactional or marketing');
  }
  const messageStream: 'transactional' | 'marketing' = streamValue;
  if (messageStream === 'marketing' && input.marketingPaused?.(account.id)) {
    throw smtpError(451, '4.7.1', PAUSED_TEXT);
  }

  const { mailFrom } = input;
  const recipients: { address: string; domain: string }[] = [];
  const unsubscribed: { address: string; reason: string }[] = [];
  for (const address of input.rcptTo) {
    // Unsubscribes stop marketing mail; RCPT could not know the stream of this message yet.
    const entry =
      messageStream === 'marketing'
        ? await blockingEntry(spool.suppressions, account.id, address, 'marketing')
        : null;
    if (entry) unsubscribed.push({ address, reason: entry.reason });
    else recipients.push({ address, domain: parseAddress(address)!.domain });
  }
  if (recipients.length === 0)
    throw smtpError(
      550,
      '5.7.1',
      `All recipients are suppressed (${unsubscribed[unsubscribed.length - 1]?.reason ?? 'suppressed'})`,
    );
  // Marketing mail carries a List-Unsubscribe link for its one recipient, so each recipient gets
  // its own copy (and signature).
  const perRecipient =
    messageStream === 'marketing' &&
    input.unsubscribeHeaders !== undefined &&
    !parsed.headers.some((h) => h.name === 'list-unsubscribe');
  const units = perRecipient ? recipients.map((r) => [r]) : [recipients];
  const now = new Date(input.clock.now());
  // Copies differ only in their header fields: the body's mentions are found once.
  let firstMentions: readonly string[] | null = null;
  const mentionsOf = (body: Buffer): readonly string[] => {
    if (firstMentions === null) return (firstMentions = mentionedAddresses(body));
    const end = body.indexOf('\r\n\r\n');
    return [
      ...new Set([
        ...firstMentions,
        ...mentionedAddresses(body.subarray(0, end === -1 ? body.length : end + 4)),
      ]),
    ];
  };
  const build = async (unitRecipients: readonly { address: string; domain: string }[]): Promise<Copy> => {
    const id = spool.messages.newId();
    const extraHeaders = perRecipient
      ? await input.unsubscribeHeaders!(account.id, unitRecipients[0]!.address)
      : [];
    const normalized = normalizeMessage({
      parsed,
      receivedHeader: input.received(id, now),
      hostname: input.hostname,
      queueId: id,
      now,
      extraHeaders,
    });
    const signature = input.sign ? await input.sign(normalized.data, fromDomains[0]!) : null;
    if (!signature?.aligned && input.requireSignature) {
      throw smtpError(550, '5.7.1', 'No DKIM key for the From: domain, and signing is required');
    }
    const body = signature ? Buffer.concat([signature.header, normalized.data]) : normalized.data;
    const message = {
      accountId: account.id,
      mailFrom,
      recipients: unitRecipients,
      headerMessageId: normalized.messageId,
      body,
      listener: input.listener,
      stream: messageStream,
      mentions: mentionsOf(body),
    };
    return { id, message, size: body.length, signed: signature?.aligned ?? false };
  };
  const warnUnsigned = (first: Copy): void => {
    if (input.sign && !first.signed) {
      logger.warn(
        { sessionId, msgId: first.id, domain: fromDomains[0] },
        'no DKIM key for the From: domain; not signed as that domain',
      );
    }
  };

  // The spool may take the bodies without copying them: from here on only ids and sizes are read.
  let queued: readonly Queued[];
  if (units.length === 1) {
    const copy = await build(units[0]!);
    warnUnsigned(copy);
    try {
      await spool.messages.insert(copy.id, copy.message);
    } catch (err) {
      throw storageReply(err, logger, sessionId);
    }
    queued = [summary(copy)];
  } else {
    queued = await fanOut(units, build, warnUnsigned, spool, logger, sessionId);
  }
  for (const p of queued) {
    logger.info(
      {
        event: 'reception',
        msgId: p.id,
        sessionId,
        listener: input.listener,
        accountId: account.id,
        stream: messageStream,
        recipients: p.recipients,
        size: p.size,
        signed: p.signed,
      },
      'message queued',
    );
  }
  return { ids: queued.map((q) => q.id), recipients: recipients.map((r) => r.address), unsubscribed };
}

/** Header fields that name who wrote or sent the message, with their names for replies. */
const AUTHOR_FIELDS: Readonly<Record<string, string>> = {
  from: 'From',
  sender: 'Sender',
  'resent-from': 'Resent-From',
  'resent-sender': 'Resent-Sender',
};

/** The domains of a From:-like field; refuses a field without an address or with a domain the account may not use. */
function authorDomains(field: HeaderField, label: string, account: Account): string[] {
  const addresses = extractAddresses(headerValue(field));
  if (addresses.length === 0) throw smtpError(554, '5.6.0', `${label} header has no address`);
  return addresses.map((addr) => {
    const domain = parseAddress(addr)?.domain;
    if (!domain || !account.allowedDomains.some((d) => domainMatches(domain, d))) {
      throw smtpError(550, '5.7.1', `${label}: domain not allowed for this account`);
    }
    return domain;
  });
}

/**
 * Bytes of copies a fan-out holds at once: built and signed, not yet written. A 25 MB message
 * to 100 recipients would otherwise hold 2.5 GB.
 */
const FANOUT_BUDGET_BYTES = 32 * 1024 * 1024;

interface Copy {
  readonly id: string;
  readonly message: NewMessage;
  readonly size: number;
  readonly signed: boolean;
}

/** What is logged about a copy once written; no body, which the spool write may move away. */
interface Queued {
  readonly id: string;
  readonly recipients: number;
  readonly size: number;
  readonly signed: boolean;
}

const summary = (c: Copy): Queued => ({
  id: c.id,
  recipients: c.message.recipients.length,
  size: c.size,
  signed: c.signed,
});

/**
 * Builds, signs and writes one copy per unit in batches of at most FANOUT_BUDGET_BYTES (the
 * first copy alone, whose size sets the batch length), staged, then queues them all at once.
 * On any failure the staged copies are deleted, so the client's retry duplicates nothing; what
 * a crash leaves staged is purged at the next start.
 */
async function fanOut(
  units: readonly (readonly { address: string; domain: string }[])[],
  build: (unit: readonly { address: string; domain: string }[]) => Promise<Copy>,
  warnUnsigned: (first: Copy) => void,
  spool: Spool,
  logger: Logger,
  sessionId: string,
): Promise<Queued[]> {
  const written: Queued[] = [];
  let perBatch = 1;
  try {
    for (let next = 0; next < units.length;) {
      const batch = await Promise.all(units.slice(next, next + perBatch).map(build));
      if (next === 0) {
        warnUnsigned(batch[0]!);
        perBatch = Math.max(1, Math.floor(FANOUT_BUDGET_BYTES / batch[0]!.size));
      }
      next += batch.length;
      written.push(...batch.map(summary));
      await spool.messages.stage(batch);
    }
    await spool.messages.publish(written.map((c) => c.id));
    return written;
  } catch (err) {
    if (written.length > 0) {
      await spool.messages
        .discard(written.map((c) => c.id))
        .catch((e: unknown) =>
          logger.error(
            { sessionId, err: e, copies: written.length },
            'staged copies not discarded; the next start purges them',
          ),
        );
    }
    throw err instanceof SpoolError ? storageReply(err, logger, sessionId) : err;
  }
}

/** The client's reply to a failed spool write; the cause goes to the log only. */
function storageReply(err: unknown, logger: Logger, sessionId: string): SmtpReplyError {
  logger.error({ sessionId, err }, 'spool write failed');
  if (err instanceof SpoolError && err.code === 'PETREL_SPOOL_FULL') {
    return smtpError(452, '4.3.1', 'Insufficient system storage, try again later');
  }
  return smtpError(451, '4.3.0', 'Temporary storage failure, try again later');
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
    stream.once('end', () =>
      resolve(size > limit || stream.sizeExceeded ? null : Buffer.concat(chunks, size)),
    );
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
