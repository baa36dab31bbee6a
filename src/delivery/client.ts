import { errorMessage } from '../shared/index.js';
import { abortedOutcome, type SessionTimeouts } from './connect.js';
import { downgradeTo7Bit } from './downgrade.js';
import { localOutcome, type DeliveryOutcome } from './outcome.js';
import type { MxHost } from './resolver.js';
import type { SmtpWire } from './smtp-wire.js';
import { transact } from './transaction.js';
import { hasEightBit, wireAddress, type ServerFeatures } from './wire.js';

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

/**
 * A {@link DeliverySession} over Petrel's own SMTP client ({@link SmtpWire}), on a connection
 * that {@link connect} set up.
 */
export class Session implements DeliverySession {
  readonly mx: string;
  readonly address: string;
  readonly port: number;
  #wire: SmtpWire;
  #timeouts: SessionTimeouts;
  #signal: AbortSignal | undefined;
  #resign: ((message: Buffer) => Promise<Buffer>) | undefined;
  #features: ServerFeatures;
  #sent = 0;
  #chain: Promise<unknown> = Promise.resolve();
  /** True while a transaction is on the wire. */
  #busy = false;

  constructor(
    wire: SmtpWire,
    features: ServerFeatures,
    host: MxHost,
    timeouts: SessionTimeouts,
    signal: AbortSignal | undefined,
    resign: ((message: Buffer) => Promise<Buffer>) | undefined,
  ) {
    this.mx = host.name;
    this.address = host.address;
    this.port = host.port;
    this.#wire = wire;
    this.#features = features;
    this.#timeouts = timeouts;
    this.#signal = signal;
    this.#resign = resign;
    wire.setTimeout(timeouts.commandMs);
    signal?.addEventListener('abort', this.#abort, { once: true });
  }

  get secure(): boolean {
    return this.#wire.secure;
  }

  get extensions(): ReadonlySet<string> {
    return this.#features.extensions;
  }

  get messagesSent(): number {
    return this.#sent;
  }

  get usable(): boolean {
    return this.#wire.failure === null && !this.#signal?.aborted;
  }

  send(message: OutboundMessage, options: SendOptions = {}): Promise<DeliveryOutcome[]> {
    const run = this.#chain.then(() => this.#send(message, options.signal));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.#signal?.removeEventListener('abort', this.#abort);
    const wire = this.#wire;
    if (wire.failure) return;
    // An in-flight send is aborted (the socket goes before its final dot), not waited for.
    if (this.#busy) wire.fail({ kind: 'aborted', detail: 'session closed' });
    await this.#chain;
    if (wire.failure) return;
    wire.setTimeout(QUIT_MS);
    await wire.command('QUIT');
    wire.fail({ kind: 'lost', detail: 'closed after QUIT' });
  }

  #abort = (): void => {
    this.#wire.fail({ kind: 'aborted', detail: 'aborted' });
  };

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
    const from = wireAddress(message.mailFrom.trim(), smtpUtf8);
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
    const wire = this.#wire;
    const { extensions } = this.#features;
    const rcptTo = targets.map((t) => t.address);
    if (UNSENDABLE.test(from) || rcptTo.some((a) => UNSENDABLE.test(a))) {
      // Such an address would end its command early and smuggle in another one.
      const outcome = localOutcome(451, '4.4.2', `an address has characters SMTP cannot carry`, this.mx);
      return targets.map(() => outcome);
    }
    let mailParams = '';
    if (extensions.has('SMTPUTF8') && [from, ...rcptTo].some((a) => NON_ASCII.test(a))) {
      mailParams += ' SMTPUTF8';
    }
    if (eightBit && extensions.has('8BITMIME')) mailParams += ' BODY=8BITMIME';
    if (extensions.has('SIZE') && bytes.length > 0) mailParams += ` SIZE=${bytes.length}`;
    const onAbort = (): void => wire.fail({ kind: 'aborted', detail: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#busy = true;
    try {
      const result = await transact(wire, {
        mx: this.mx,
        mailFrom: from,
        mailParams,
        rcptTo,
        message: bytes,
        pipelining: extensions.has('PIPELINING'),
        commandMs: this.#timeouts.commandMs,
        deadline: Date.now() + this.#timeouts.dataMs,
      });
      if (result.after === 'reset') await this.#reset();
      return result.outcomes;
    } finally {
      this.#busy = false;
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** RSET after a refused transaction, so the next one starts clean; a failed RSET ends the session. */
  async #reset(): Promise<void> {
    const reply = await this.#wire.command('RSET');
    if (reply !== null && reply.code !== 250) {
      this.#wire.fail({ kind: 'protocol', detail: `RSET answered ${reply.code}` });
    }
  }
}

/** How long close() waits for the reply to QUIT. */
const QUIT_MS = 2_000;

const NON_ASCII = /[\u0080-\uffff]/;
const UNSENDABLE = /[\r\n<>]/;
