import { abortedOutcome } from './connect.js';
import { dotStuffed, endOfData } from './dot-stuff.js';
import { localOutcome, outcomeOf, parseReply, type DeliveryOutcome } from './outcome.js';
import type { WireReply } from './reply-reader.js';
import type { SmtpWire, WireFailure } from './smtp-wire.js';

/** One MAIL/RCPT/DATA exchange, addresses already in their wire form. */
export interface Transaction {
  readonly mx: string;
  readonly mailFrom: string;
  /** MAIL FROM parameters (SMTPUTF8, BODY=8BITMIME, SIZE=…), each with its leading space. */
  readonly mailParams: string;
  readonly rcptTo: readonly string[];
  readonly message: Uint8Array;
  /** RFC 2920: send MAIL, every RCPT and DATA in one write. */
  readonly pipelining: boolean;
  /** Inactivity bound of the session, restored afterwards. */
  readonly commandMs: number;
  /** Epoch ms by which the reply to the final dot must be in. */
  readonly deadline: number;
}

/**
 * How the session goes on: `keep` after a delivered message, `reset` (RSET) after a refused
 * one, `closed` when the connection is gone or was dropped because the server could not be
 * trusted with the next transaction.
 */
export type After = 'keep' | 'reset' | 'closed';

export interface TransactionResult {
  /** One per `rcptTo`, in order. */
  readonly outcomes: DeliveryOutcome[];
  readonly after: After;
}

/** Bytes written before waiting for the socket to drain. */
const HIGH_WATER = 256 * 1024;

/**
 * Runs one transaction on `wire`. A refused MAIL FROM ends every recipient with its reply; a
 * refused RCPT ends that recipient with its own; the DATA refusal or the reply to the final dot
 * goes to every accepted recipient. When the connection ends or times out first, accepted
 * recipients are deferred with why, and those whose RCPT was never answered too.
 */
export async function transact(wire: SmtpWire, tx: Transaction): Promise<TransactionResult> {
  const { mx } = tx;
  const n = tx.rcptTo.length;
  const mailCommand = `MAIL FROM:<${tx.mailFrom}>${tx.mailParams}`;
  const rcptReplies: (WireReply | null)[] = new Array<WireReply | null>(n).fill(null);
  let mail: WireReply | null;
  let data: WireReply | null = null;
  let accepted = 0;
  armDeadline(wire, tx);

  if (tx.pipelining) {
    const commands = [mailCommand];
    for (const rcpt of tx.rcptTo) commands.push(`RCPT TO:<${rcpt}>`);
    commands.push('DATA');
    const replies = wire.pipeline(commands);
    mail = await replies[0]!;
    for (let i = 0; i < n; i++) {
      const reply = await replies[i + 1]!;
      rcptReplies[i] = reply;
      if (reply !== null && isPositive(reply)) accepted += 1;
    }
    data = await replies[n + 1]!;
  } else {
    mail = await wire.command(mailCommand);
    if (mail !== null && isPositive(mail)) {
      for (let i = 0; i < n; i++) {
        const reply = await wire.command(`RCPT TO:<${tx.rcptTo[i]!}>`);
        rcptReplies[i] = reply;
        if (reply === null) break;
        if (isPositive(reply)) accepted += 1;
      }
      if (accepted > 0) data = await wire.command('DATA');
    }
  }

  if (mail !== null && !isPositive(mail)) {
    const outcome = replyOutcome(mail, mx);
    // A server that refused the sender and then took DATA anyway cannot be trusted with an
    // empty message either: drop the connection rather than answer it.
    if (data !== null && data.code >= 300 && data.code < 400) wire.fail(dropped);
    return finish(
      wire,
      tx,
      rcptReplies.map(() => outcome),
      'reset',
    );
  }

  let final: DeliveryOutcome | null = null;
  let after: After = 'reset';
  if (accepted === 0) {
    if (data !== null && data.code >= 300 && data.code < 400) {
      // RFC 2920 §3.1: DATA after no accepted RCPT should be refused, and when it was accepted
      // anyway the client sends a single dot. In DATA mode an RSET would be message text; it
      // comes after the dot's reply.
      const ended = wire.read();
      wire.write('.\r\n');
      await ended;
    }
  } else if (data === null) {
    final = null;
  } else if (data.code >= 400) {
    final = replyOutcome(data, mx);
  } else {
    const reply = await sendBody(wire, tx);
    if (reply !== null) {
      final = replyOutcome(reply, mx);
      if (final.kind === 'delivered') after = 'keep';
    }
  }

  const lost = wire.failure;
  const lostOutcome = lost ? failureOutcome(lost, mx) : localOutcome(451, '4.4.2', `no reply from ${mx}`, mx);
  // An abort or the transaction's own deadline is the attempt's end for everyone still open.
  const local = lost?.kind === 'aborted' || lost?.kind === 'deadline';
  const why = lost ? `: ${lostOutcome.reply.text}` : '';
  const unanswered = local
    ? lostOutcome
    : localOutcome(451, '4.4.2', `no reply from ${mx} to RCPT TO${why}`, mx);
  const outcomes = rcptReplies.map((reply): DeliveryOutcome => {
    if (reply === null) return unanswered;
    if (!isPositive(reply)) return replyOutcome(reply, mx);
    return final ?? lostOutcome;
  });
  return finish(wire, tx, outcomes, after);
}

/**
 * Writes the message, dot-stuffed, straight from the given bytes (no copy of the whole message),
 * corked so that a small message and its final dot leave in one segment; returns the reply to
 * the final dot.
 */
async function sendBody(wire: SmtpWire, tx: Transaction): Promise<WireReply | null> {
  let pending = 0;
  wire.cork();
  for (const piece of dotStuffed(tx.message)) {
    const more = wire.write(piece);
    pending += piece.length;
    if (!more || pending >= HIGH_WATER) {
      wire.uncork();
      if (!more) await wire.drain();
      if (wire.failure || !armDeadline(wire, tx)) return null;
      pending = 0;
      wire.cork();
    }
  }
  const reply = wire.read();
  wire.write(endOfData(tx.message));
  wire.uncork();
  armDeadline(wire, tx);
  return reply;
}

/**
 * Shortens the socket's inactivity timeout to what is left of the transaction when that is
 * less, so the one socket timer bounds both. False (and the connection ended) once it is past.
 */
function armDeadline(wire: SmtpWire, tx: Transaction): boolean {
  const left = tx.deadline - Date.now();
  if (left <= 0) {
    wire.fail({ kind: 'deadline', detail: 'transaction took too long' });
    return false;
  }
  if (left < tx.commandMs) wire.setTimeout(left, 'deadline');
  return true;
}

function finish(
  wire: SmtpWire,
  tx: Transaction,
  outcomes: DeliveryOutcome[],
  after: After,
): TransactionResult {
  if (wire.failure) return { outcomes, after: 'closed' };
  wire.setTimeout(tx.commandMs);
  return { outcomes, after };
}

const dropped: WireFailure = { kind: 'protocol', detail: 'server took DATA after refusing MAIL FROM' };

function isPositive(reply: WireReply): boolean {
  return reply.code >= 200 && reply.code < 300;
}

function replyOutcome(reply: WireReply, mx: string): DeliveryOutcome {
  const parsed = parseReply(reply.raw) ?? { code: reply.code, enhanced: '', text: reply.raw };
  return outcomeOf(parsed, mx);
}

/** The outcome for a recipient whose transaction ended without a reply of its own. */
export function failureOutcome(failure: WireFailure, mx: string): DeliveryOutcome {
  switch (failure.kind) {
    case 'aborted':
      return abortedOutcome(mx);
    case 'deadline':
      return localOutcome(451, '4.4.2', `timeout sending the message to ${mx}`, mx);
    case 'timeout':
      return localOutcome(451, '4.4.2', `timeout waiting for ${mx}`, mx);
    case 'closed': {
      const reply = parseReply(failure.reply ?? '');
      if (reply) return outcomeOf(reply, mx);
      break;
    }
    default:
      break;
  }
  return localOutcome(451, '4.4.2', `connection to ${mx} lost: ${failure.detail}`, mx);
}
