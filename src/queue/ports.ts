import type { SmtpReply } from '../shared/index.js';
import type { Shaping } from './shaping.js';

/** What one attempt did for one recipient (a value, never an exception). */
export interface Outcome {
  readonly kind: 'delivered' | 'deferred' | 'failed';
  readonly reply: SmtpReply;
  readonly mx: string | null;
}

/** A host to try; the queue only reads its name (for MX-suffix shaping). */
export interface RouteHost {
  readonly name: string;
}

export type RouteResult =
  | { readonly ok: true; readonly hosts: readonly RouteHost[] }
  | { readonly ok: false; readonly outcome: Outcome };

/** An open SMTP session the queue may feed several messages for one destination. */
export interface OutboundSession {
  readonly mx: string;
  readonly usable: boolean;
  /** One outcome per recipient, in order; never rejects. */
  send(
    message: { readonly mailFrom: string; readonly rcptTo: readonly string[]; readonly message: Uint8Array },
    options?: { readonly signal?: AbortSignal },
  ): Promise<Outcome[]>;
  close(): Promise<void>;
}

export type OpenResult =
  | { readonly ok: true; readonly session: OutboundSession }
  | { readonly ok: false; readonly outcome: Outcome };

/**
 * The network side, injected into the queue (STYLE: queue owns state, delivery returns
 * outcomes). Production wires src/delivery; tests may wire a resolver that points at a sink.
 */
export interface Transport {
  resolve(domain: string): Promise<RouteResult>;
  open(
    domain: string,
    hosts: readonly RouteHost[],
    shaping: Shaping,
    signal: AbortSignal,
  ): Promise<OpenResult>;
}
