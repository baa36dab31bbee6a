import type { ReplyRecord, Spool } from '../spool/index.js';

const iso = (ms: number): string => new Date(ms).toISOString();

/** One message as `petrel queue show` and `GET /api/v1/messages/ID` show it: envelope, recipients, log. */
export interface MessageDocument {
  readonly id: string;
  readonly accountId: number | null;
  readonly mailFrom: string;
  readonly messageId: string | null;
  readonly size: number;
  readonly stream: string;
  readonly receivedAt: string;
  readonly recipients: readonly {
    readonly id: number;
    readonly recipient: string;
    readonly state: string;
    readonly attempts: number;
    readonly nextAttemptAt: string;
    readonly lastReply: string | null;
  }[];
  readonly events: readonly {
    readonly at: string;
    readonly type: string;
    readonly recipientId: number | null;
    readonly attempt: number | null;
    readonly mx: string | null;
    readonly reply: ReplyRecord | null;
  }[];
}

/**
 * The message with this queue id, or null when there is none, or it is not `accountId`'s (an
 * account never learns whether another's message exists). `accountId` undefined: any account.
 */
export async function showMessage(
  spool: Spool,
  id: string,
  accountId?: number,
): Promise<MessageDocument | null> {
  const message = await spool.messages.get(id);
  if (!message || (accountId !== undefined && message.accountId !== accountId)) return null;
  const events = await spool.queue.events(id);
  return {
    id: message.id,
    accountId: message.accountId,
    mailFrom: message.mailFrom,
    messageId: message.headerMessageId,
    size: message.size,
    stream: message.stream,
    receivedAt: iso(message.receivedAt),
    recipients: message.recipients.map((r) => ({
      id: r.id,
      recipient: r.address,
      state: r.state,
      attempts: r.attempts,
      nextAttemptAt: iso(r.nextAttemptAt),
      lastReply: r.lastReply,
    })),
    events: events.map((e) => ({
      at: iso(e.at),
      type: e.type,
      recipientId: e.recipientId,
      attempt: e.attempt,
      mx: e.mx,
      reply: e.reply,
    })),
  };
}
