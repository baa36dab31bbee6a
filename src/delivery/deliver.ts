import { localOutcome, type DeliveryOutcome } from './outcome.js';
import { openSession, type OutboundMessage } from './attempt.js';
import type { SessionOptions } from './connect.js';
import type { DestinationResolver } from './resolver.js';

/**
 * Resolves `domain`, opens a session, sends one message and closes: one outcome per
 * `message.rcptTo`, in order. For callers that do not pool sessions (the CLI, tests); the
 * scheduler uses {@link openSession} directly to keep sessions open.
 */
export async function deliverOnce(
  resolver: DestinationResolver,
  domain: string,
  message: OutboundMessage,
  options: SessionOptions,
): Promise<DeliveryOutcome[]> {
  const resolution = await resolver.resolve(domain);
  if (!resolution.ok) return message.rcptTo.map(() => resolution.outcome);
  const opened = await openSession(resolution.hosts, options);
  if (!opened.ok) return message.rcptTo.map(() => opened.outcome);
  const { session } = opened;
  try {
    return await session.send(message);
  } catch (err) {
    // send() never rejects by contract; this keeps a bug from losing the recipients.
    return message.rcptTo.map(() => localOutcome(451, '4.3.0', `internal error: ${String(err)}`, session.mx));
  } finally {
    await session.close();
  }
}
