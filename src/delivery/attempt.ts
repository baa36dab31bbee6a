import { connect, DEFAULT_TIMEOUTS, abortedOutcome, type SessionOptions } from './connect.js';
import { Session, type DeliverySession } from './client.js';
import { localFailure, type FailureOutcome } from './outcome.js';
import type { MxHost } from './resolver.js';

export type { DeliverySession, OutboundMessage, SendOptions } from './client.js';

export type OpenResult =
  | { readonly ok: true; readonly session: DeliverySession }
  | { readonly ok: false; readonly outcome: FailureOutcome };

/**
 * Connects to the first host that completes greeting, EHLO and the TLS policy, trying `hosts`
 * in order (the next one on refusal, timeout, a bad greeting or a TLS policy failure). When
 * none does, the outcome to record for every recipient: the last transient failure if any host
 * failed transiently, otherwise the last host's permanent reply (e.g. a 554 banner).
 */
export async function openSession(hosts: readonly MxHost[], options: SessionOptions): Promise<OpenResult> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  let lastTransient: FailureOutcome | null = null;
  let last: FailureOutcome | null = null;
  for (const host of hosts) {
    if (options.signal?.aborted) break;
    let result = await connect(host, options, timeouts, false);
    if (!result.ok && result.tlsFailed && options.tls === 'may' && !options.signal?.aborted) {
      // Opportunistic TLS must never make delivery worse than plaintext (RFC 7435).
      result = await connect(host, options, timeouts, true);
    }
    if (result.ok) {
      return {
        ok: true,
        session: new Session(result.wire, result.features, host, timeouts, options.signal, options.resign),
      };
    }
    last = result.outcome;
    if (result.outcome.kind === 'deferred') lastTransient = result.outcome;
  }
  if (options.signal?.aborted) return { ok: false, outcome: abortedOutcome(hosts[0]?.name ?? null) };
  const outcome = lastTransient ?? last ?? localFailure(451, '4.4.4', 'no host to connect to', null);
  return { ok: false, outcome };
}
