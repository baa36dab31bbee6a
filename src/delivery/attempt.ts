import { PassThrough } from 'node:stream';
import { errorMessage } from '../shared/index.js';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPConnectionEnvelope } from 'nodemailer/lib/smtp-connection';
import {
  abortedOutcome,
  connect,
  DEFAULT_TIMEOUTS,
  type SessionOptions,
  type SessionTimeouts,
} from './connect.js';
import {
  localFailure,
  localOutcome,
  outcomeOf,
  parseReply,
  type DeliveryOutcome,
  type FailureOutcome,
} from './outcome.js';
import { downgradeTo7Bit } from './downgrade.js';
import type { MxHost } from './resolver.js';
import {
  featuresOf,
  hasEightBit,
  isConnectionError,
  outcomeOfError,
  outcomeOfRejection,
  wireAddress,
  type ClientError,
  type ServerFeatures,
} from './wire.js';

/** One message to send: the envelope and the RFC 5322 bytes (CRLF line endings), sent as given. */
export interface OutboundMessage {
  /** Envelope sender; "" for the null reverse path (MAIL FROM:<>). */
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  readonly message: Uint8Array;
}

export interface SendOptions {
  /** Aborts this message: before the final dot when possible; the session is then closed. */
  readonly signal?: AbortSignal;
}

/**
 * An open SMTP session to one host. Sends are serialized; the scheduler may keep the session
 * and feed it further messages for the same destination while {@link usable} is true.
 */
export interface DeliverySession {
  /** Host name of the server (MX name or route host). */
  readonly mx: string;
  readonly address: string;
  readonly port: number;
  /** True when the session runs over TLS. */
  readonly secure: boolean;
  /** Extensions from the last EHLO (upper case). */
  readonly extensions: ReadonlySet<string>;
  /** Messages handed to {@link send} so far. */
  readonly messagesSent: number;
  /** False once the connection is closed, lost, aborted or out of sync. */
  readonly usable: boolean;
  /**
   * Sends one transaction. Resolves with one outcome per `rcptTo` entry, in the same order;
   * never rejects. 2xx delivered, 4xx/connection/timeout deferred, 5xx failed. A missing reply
   * after DATA (disconnect, timeout, abort) defers every recipient the server had accepted.
   */
  send(message: OutboundMessage, options?: SendOptions): Promise<DeliveryOutcome[]>;
  /** QUIT (bounded) and close; idempotent. An in-flight send is aborted. */
  close(): Promise<void>;
}

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
      return { ok: true, session: new Session(result.conn, host, timeouts, options.signal, options.resign) };
    }
    last = result.outcome;
    if (result.outcome.kind === 'deferred') lastTransient = result.outcome;
  }
  if (options.signal?.aborted) return { ok: false, outcome: abortedOutcome(hosts[0]?.name ?? null) };
  const outcome = lastTransient ?? last ?? localFailure(451, '4.4.4', 'no host to connect to', null);
  return { ok: false, outcome };
}

class Session implements DeliverySession {
  readonly mx: string;
  readonly address: string;
  readonly port: number;
  #conn: SMTPConnection;
  #timeouts: SessionTimeouts;
  #signal: AbortSignal | undefined;
  #resign: ((message: Buffer) => Promise<Buffer>) | undefined;
  #features: ServerFeatures;
  #closed = false;
  #sent = 0;
  #chain: Promise<unknown> = Promise.resolve();
  #interrupt: (() => void) | null = null;

  constructor(
    conn: SMTPConnection,
    host: MxHost,
    timeouts: SessionTimeouts,
    signal: AbortSignal | undefined,
    resign: ((message: Buffer) => Promise<Buffer>) | undefined,
  ) {
    this.mx = host.name;
    this.#resign = resign;
    this.address = host.address;
    this.port = host.port;
    this.#conn = conn;
    this.#timeouts = timeouts;
    this.#signal = signal;
    this.#features = featuresOf(conn);
    conn.once('end', () => {
      this.#closed = true;
    });
    signal?.addEventListener('abort', this.#onSessionAbort, { once: true });
  }

  get secure(): boolean {
    return this.#conn.secure;
  }

  get extensions(): ReadonlySet<string> {
    return this.#features.extensions;
  }

  get messagesSent(): number {
    return this.#sent;
  }

  get usable(): boolean {
    return !this.#closed && !this.#conn.destroyed && !this.#signal?.aborted;
  }

  send(message: OutboundMessage, options: SendOptions = {}): Promise<DeliveryOutcome[]> {
    const run = this.#chain.then(() => this.#send(message, options.signal));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.#signal?.removeEventListener('abort', this.#onSessionAbort);
    this.#interrupt?.();
    if (this.#closed) return;
    await this.#chain;
    if (!this.#closed && !this.#conn.destroyed) {
      const ended = new Promise<void>((resolve) => this.#conn.once('end', () => resolve()));
      this.#conn.quit();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]);
      clearTimeout(timer);
    }
    this.#destroy();
  }

  #onSessionAbort = (): void => {
    this.#interrupt?.();
    this.#destroy();
  };

  #destroy(): void {
    this.#closed = true;
    this.#conn.close();
  }

  async #send(message: OutboundMessage, signal: AbortSignal | undefined): Promise<DeliveryOutcome[]> {
    this.#sent += 1;
    const mx = this.mx;
    const outcomes: (DeliveryOutcome | undefined)[] = message.rcptTo.map(() => undefined);
    const all = (o: DeliveryOutcome): DeliveryOutcome[] => message.rcptTo.map(() => o);
    if (this.#signal?.aborted || signal?.aborted) return all(abortedOutcome(mx));
    if (!this.usable) return all(localOutcome(451, '4.4.2', `session with ${mx} is closed`, mx));

    const { extensions } = this.#features;
    // Addresses first: a message that needs SMTPUTF8 fails with 5.6.7 whatever its body.
    const smtpUtf8 = extensions.has('SMTPUTF8');
    const from = wireAddress(message.mailFrom, smtpUtf8);
    if (from === null) {
      return all(
        localOutcome(550, '5.6.7', `sender address needs SMTPUTF8, which ${mx} does not support`, mx),
      );
    }
    const targets: { index: number; address: string }[] = [];
    for (const [index, rcpt] of message.rcptTo.entries()) {
      const address = wireAddress(rcpt.trim(), smtpUtf8);
      if (address === null) {
        outcomes[index] = localOutcome(
          553,
          '5.6.7',
          `recipient address needs SMTPUTF8, which ${mx} does not support`,
          mx,
        );
      } else {
        targets.push({ index, address });
      }
    }
    const result = targets.length > 0 ? await this.#prepare(from, message.message, targets, signal) : [];
    for (const [i, outcome] of result.entries()) outcomes[targets[i]!.index] = outcome;
    return outcomes.map((o) => o ?? localOutcome(451, '4.4.2', `no reply from ${mx}`, mx));
  }

  /** Downgrades the message if the server needs it, checks its size, and sends it to `targets`. */
  async #prepare(
    from: string,
    message: Uint8Array,
    targets: readonly { address: string }[],
    signal: AbortSignal | undefined,
  ): Promise<DeliveryOutcome[]> {
    const mx = this.mx;
    const { extensions, maxSize } = this.#features;
    let bytes = message;
    let eightBit = hasEightBit(bytes);
    if (eightBit && !extensions.has('8BITMIME')) {
      const downgraded = await this.#downgrade(bytes);
      if ('outcome' in downgraded) return targets.map(() => downgraded.outcome);
      bytes = downgraded.bytes;
      eightBit = false;
    }
    if (maxSize > 0 && bytes.length > maxSize) {
      const tooBig = localOutcome(
        552,
        '5.3.4',
        `message size exceeds the ${maxSize} byte limit of ${mx}`,
        mx,
      );
      return targets.map(() => tooBig);
    }
    return this.#transact(from, targets, bytes, eightBit, signal);
  }

  /**
   * The 7-bit form of an 8-bit message (RFC 6152 §3), re-signed; or the outcome for every
   * recipient when it cannot be downgraded (5.6.3) or re-signing failed (transient: a key
   * problem the operator can fix, better than sending signatures that fail).
   */
  async #downgrade(bytes: Uint8Array): Promise<{ bytes: Buffer } | { outcome: DeliveryOutcome }> {
    const mx = this.mx;
    const downgraded = downgradeTo7Bit(bytes);
    if (downgraded === null) {
      return {
        outcome: localOutcome(
          554,
          '5.6.3',
          `message has 8-bit content that cannot be converted to 7 bits, and ${mx} does not support 8BITMIME`,
          mx,
        ),
      };
    }
    if (!this.#resign) return { bytes: downgraded };
    try {
      return { bytes: await this.#resign(downgraded) };
    } catch (err) {
      return {
        outcome: localOutcome(451, '4.3.0', `re-signing the 7-bit form failed: ${errorMessage(err)}`, mx),
      };
    }
  }

  /** One MAIL/RCPT/DATA transaction; returns one outcome per target. */
  async #transact(
    from: string,
    targets: readonly { address: string }[],
    bytes: Uint8Array,
    eightBit: boolean,
    signal: AbortSignal | undefined,
  ): Promise<DeliveryOutcome[]> {
    const mx = this.mx;
    // nodemailer fills in accepted/rejected/rejectedErrors on the object it is given.
    const envelope = {
      from,
      to: targets.map((t) => t.address),
      size: bytes.length,
      use8BitMime: eightBit,
    } as Partial<SMTPConnectionEnvelope>;
    type Ending =
      | { kind: 'sent'; response: string }
      | { kind: 'error'; err: ClientError }
      | { kind: 'local'; outcome: DeliveryOutcome };
    const ending = await new Promise<Ending>((resolve) => {
      let done = false;
      const body = new PassThrough();
      const finish = (e: Ending): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#interrupt = null;
        resolve(e);
      };
      const onAbort = (): void => {
        // Closing the socket before the final dot makes the server discard the message.
        this.#destroy();
        finish({ kind: 'local', outcome: abortedOutcome(mx) });
      };
      const timer = setTimeout(() => {
        this.#destroy();
        finish({
          kind: 'local',
          outcome: localOutcome(451, '4.4.2', `timeout sending the message to ${mx}`, mx),
        });
      }, this.#timeouts.dataMs);
      this.#interrupt = onAbort;
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#conn.send(envelope, body, (err, info) => {
        if (err) finish({ kind: 'error', err: err as ClientError });
        else finish({ kind: 'sent', response: info?.response ?? '' });
      });
      void feed(body, bytes, () => done);
    });

    const rejected = new Map<string, ClientError[]>();
    const errors =
      envelope.rejectedErrors ?? (ending.kind === 'error' ? ending.err.rejectedErrors : undefined) ?? [];
    for (const e of errors as ClientError[]) {
      if (e.recipient === undefined) continue;
      rejected.set(e.recipient, [...(rejected.get(e.recipient) ?? []), e]);
    }
    const accepted = [...(envelope.accepted ?? [])];
    const mailError = ending.kind === 'error' && ending.err.command === 'MAIL FROM' && ending.err.response;

    let finalOutcome: DeliveryOutcome;
    if (ending.kind === 'sent') {
      const reply = parseReply(ending.response) ?? { code: 250, enhanced: '', text: ending.response };
      finalOutcome = outcomeOf(reply, mx);
    } else if (ending.kind === 'error') {
      finalOutcome = outcomeOfError(ending.err, mx);
    } else {
      finalOutcome = ending.outcome;
    }
    const noReply =
      ending.kind === 'local'
        ? ending.outcome
        : localOutcome(451, '4.4.2', `no reply from ${mx} to RCPT TO`, mx);

    const outcomes = targets.map(({ address }): DeliveryOutcome => {
      if (mailError && ending.kind === 'error') return outcomeOfRejection(ending.err, mx);
      const own = rejected.get(address)?.shift();
      if (own) return outcomeOfRejection(own, mx);
      const i = accepted.indexOf(address);
      if (i >= 0) {
        accepted.splice(i, 1);
        return finalOutcome;
      }
      return noReply;
    });

    if (ending.kind === 'error' && !isConnectionError(ending.err) && this.usable) await this.#reset();
    else if (ending.kind === 'error' && isConnectionError(ending.err)) this.#destroy();
    return outcomes;
  }

  /** RSET after a refused transaction, so the next one starts clean; a failed RSET ends the session. */
  #reset(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#destroy();
        resolve();
      }, this.#timeouts.commandMs);
      this.#conn.reset((err) => {
        clearTimeout(timer);
        if (err) this.#destroy();
        resolve();
      });
    });
  }
}

const CHUNK = 64 * 1024;

/**
 * Writes the message into nodemailer's send stream chunk by chunk, honouring backpressure, and
 * ends it (which makes nodemailer send the final dot) only if the send was not given up first.
 */
async function feed(stream: PassThrough, bytes: Uint8Array, stopped: () => boolean): Promise<void> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK) {
    if (stopped() || stream.destroyed) return;
    if (!stream.write(bytes.subarray(offset, offset + CHUNK))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          stream.removeListener('drain', done);
          stream.removeListener('close', done);
          resolve();
        };
        stream.once('drain', done);
        stream.once('close', done);
      });
    }
  }
  if (stopped() || stream.destroyed) return;
  stream.end();
}
