import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { ReplyReader, type WireReply } from './reply-reader.js';

/**
 * Why a connection ended. `closed` carries the 421 the server announced it with; `deadline`
 * is the transaction bound of the caller, `timeout` the inactivity bound of the socket.
 */
export interface WireFailure {
  readonly kind: 'lost' | 'closed' | 'timeout' | 'deadline' | 'protocol' | 'aborted' | 'tls';
  readonly detail: string;
  /** Node's error code (ECONNREFUSED, ERR_SSL_…, ERR_TLS_CERT_ALTNAME_INVALID, …). */
  readonly code?: string;
  /** The raw 421 reply for `closed`. */
  readonly reply?: string;
}

type Waiter = (reply: WireReply | null) => void;

export interface WireConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string;
  readonly connectMs: number;
  readonly signal?: AbortSignal;
}

/**
 * An SMTP connection: one socket (plain, or TLS after {@link upgrade}), the replies read from it
 * in order, and one inactivity timeout (the socket's own, re-armed by Node on every read and
 * write). Each command registers a waiter before it is written, so every reply has a taker; a
 * reply nobody waits for is a protocol violation and ends the connection, as does a 421 once
 * its waiter has it. Waiters get null when the connection ends; {@link failure} says why.
 */
export class SmtpWire {
  #socket: Socket | TLSSocket;
  #reader = new ReplyReader();
  #waiters: Waiter[] = [];
  #drains: (() => void)[] = [];
  #failure: WireFailure | null = null;
  #timeoutKind: 'timeout' | 'deadline' = 'timeout';
  #timeoutMs = 0;
  #secure = false;
  #handshake: ((failure: WireFailure | null) => void) | null = null;

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  /** Opens the TCP connection; the failure when it cannot be made within `connectMs`. */
  static open(options: WireConnectOptions): Promise<SmtpWire | WireFailure> {
    return new Promise((resolve) => {
      const socket = tcpConnect({
        host: options.host,
        port: options.port,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      });
      const onAbort = (): void => fail({ kind: 'aborted', detail: 'aborted' });
      const fail = (failure: WireFailure): void => {
        options.signal?.removeEventListener('abort', onAbort);
        socket.removeAllListeners();
        socket.on('error', () => undefined);
        socket.destroy();
        resolve(failure);
      };
      socket.setTimeout(options.connectMs);
      socket.once('timeout', () => fail({ kind: 'timeout', detail: 'connect timeout' }));
      socket.once('error', (err: NodeJS.ErrnoException) =>
        fail({ kind: 'lost', detail: err.message, ...(err.code ? { code: err.code } : {}) }),
      );
      options.signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => {
        options.signal?.removeEventListener('abort', onAbort);
        socket.removeAllListeners();
        socket.setNoDelay(true);
        resolve(new SmtpWire(socket));
      });
    });
  }

  get secure(): boolean {
    return this.#secure;
  }

  get failure(): WireFailure | null {
    return this.#failure;
  }

  /** Sets the inactivity timeout; `deadline` marks it as the caller's transaction bound. */
  setTimeout(ms: number, kind: 'timeout' | 'deadline' = 'timeout'): void {
    this.#timeoutKind = kind;
    if (ms === this.#timeoutMs) return;
    this.#timeoutMs = ms;
    this.#socket.setTimeout(ms);
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** The next reply, or null when the connection ended first. */
  read(): Promise<WireReply | null> {
    if (this.#failure) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Writes one command and waits for its reply. */
  command(line: string): Promise<WireReply | null> {
    const reply = this.read();
    this.write(`${line}\r\n`);
    return reply;
  }

  /** Writes several commands in one write (RFC 2920 §3.1); their replies, in order. */
  pipeline(lines: readonly string[]): Promise<WireReply | null>[] {
    const replies = lines.map(() => this.read());
    this.write(`${lines.join('\r\n')}\r\n`);
    return replies;
  }

  /** Writes raw bytes; false when the caller should wait for {@link drain}. */
  write(data: string | Uint8Array): boolean {
    if (this.#failure) return true;
    return this.#socket.write(data);
  }

  cork(): void {
    this.#socket.cork();
  }

  uncork(): void {
    this.#socket.uncork();
  }

  /** Resolves once the socket can take more, or is gone. */
  drain(): Promise<void> {
    if (this.#failure) return Promise.resolve();
    return new Promise((resolve) => this.#drains.push(resolve));
  }

  /**
   * Replaces the plain socket by TLS over it (after a 220 to STARTTLS). Nothing the server sent
   * in plaintext after the 220 survives: the reader starts anew (STARTTLS command injection).
   */
  upgrade(options: ConnectionOptions): Promise<WireFailure | null> {
    if (this.#failure) return Promise.resolve(this.#failure);
    const plain = this.#socket;
    this.#detach(plain);
    plain.setTimeout(0);
    this.#reader = new ReplyReader();
    return new Promise((resolve) => {
      const secure = tlsConnect({ ...options, socket: plain });
      this.#socket = secure;
      this.#handshake = resolve;
      this.#attach(secure);
      secure.once('secureConnect', () => {
        this.#handshake = null;
        this.#secure = true;
        resolve(this.#failure);
      });
      const ms = this.#timeoutMs;
      this.#timeoutMs = 0;
      this.setTimeout(ms);
    });
  }

  /** Ends the connection for `failure` (the first reason wins); pending waiters get null. */
  fail(failure: WireFailure): void {
    if (this.#failure) return;
    // Whatever ends a handshake (an alert, a reset, silence) is a TLS failure to the policy.
    this.#failure = this.#handshake && failure.kind !== 'aborted' ? { ...failure, kind: 'tls' } : failure;
    this.#socket.destroy();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(null);
    const drains = this.#drains;
    this.#drains = [];
    for (const d of drains) d();
    const handshake = this.#handshake;
    this.#handshake = null;
    handshake?.(this.#failure);
  }

  #onData = (chunk: Buffer): void => {
    const violation = this.#reader.feed(chunk, this.#dispatch);
    if (violation !== null) this.fail({ kind: 'protocol', detail: violation });
  };

  #dispatch = (reply: WireReply): boolean => {
    if (this.#failure) return false;
    const waiter = this.#waiters.shift();
    const closing = reply.code === 421;
    if (waiter === undefined) {
      // RFC 5321 §3.8: a server may announce its closing with 421 at any time.
      if (closing) this.fail({ kind: 'closed', detail: 'server closed the connection', reply: reply.raw });
      else this.fail({ kind: 'protocol', detail: `unexpected reply: ${reply.raw.slice(0, 64)}` });
      return false;
    }
    waiter(reply);
    if (closing) {
      this.fail({ kind: 'closed', detail: 'server closed the connection', reply: reply.raw });
      return false;
    }
    return true;
  };

  #onError = (err: NodeJS.ErrnoException): void =>
    this.fail({ kind: 'lost', detail: err.message, ...(err.code ? { code: err.code } : {}) });

  #onClose = (): void => this.fail({ kind: 'lost', detail: 'connection closed' });

  #onTimeout = (): void =>
    this.fail({ kind: this.#timeoutKind, detail: `no activity for ${this.#timeoutMs} ms` });

  #onDrain = (): void => {
    const drains = this.#drains;
    this.#drains = [];
    for (const d of drains) d();
  };

  #attach(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('end', this.#onClose);
    socket.on('timeout', this.#onTimeout);
    socket.on('drain', this.#onDrain);
  }

  #detach(socket: Socket): void {
    socket.removeListener('data', this.#onData);
    socket.removeListener('error', this.#onError);
    socket.removeListener('close', this.#onClose);
    socket.removeListener('end', this.#onClose);
    socket.removeListener('timeout', this.#onTimeout);
    socket.removeListener('drain', this.#onDrain);
    // A late error on the plain socket must not throw from the emitter.
    socket.on('error', () => undefined);
  }
}
