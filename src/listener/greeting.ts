import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

interface ConnectionInternals {
  _setListeners?: (done: () => void) => void;
  /** Runs onConnect and, once admitted, sends the banner and calls `next`. */
  connectionReady?: (next?: () => void) => void;
  send(code: number, text: string, context?: string | false): void;
  close(): void;
  readonly name: string;
  readonly _closing?: boolean;
  readonly _closed?: boolean;
  init(): void;
}

/**
 * An smtp-server whose pause before the banner is chosen. With no pause it greets at once: on
 * authenticated submission smtp-server's fixed 100 ms only caps the rate of clients that open a
 * connection per message. With a pause (port 25), any byte that arrives before the banner, even
 * half a command line, gets 421 and the connection is closed; smtp-server itself refuses only
 * complete lines. The steps are those of smtp-server 3.21's own connect() with the timer
 * replaced; if its internals ever change, it falls back to the stock behaviour rather than break.
 */
export class GreetingServer extends SMTPServer {
  readonly #pauseMs: number;

  constructor(options: SMTPServerOptions, pauseMs: number) {
    super(options);
    this.#pauseMs = pauseMs;
  }

  override connect(socket: Socket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    const connection = new SMTPConnection(this, socket, socketOptions) as unknown as ConnectionInternals &
      SMTPConnection;
    this.connections.add(connection);
    connection.on('error', (err: Error) => this.emit('error', err));
    connection.on('connect', (data: unknown) => this.emit('connect', data));
    if (typeof connection._setListeners !== 'function' || typeof connection.connectionReady !== 'function') {
      connection.init();
      return;
    }
    let talked = false;
    const onEarly = (): void => {
      talked = true;
    };
    // Listening before the socket is piped to the parser, so not even the first byte is missed.
    if (this.#pauseMs > 0) socket.on('data', onEarly);
    // Admission (onConnect) may wait on the node's primary: bytes sent meanwhile wait for the
    // banner instead of meeting smtp-server's "You talk too soon". A refusal's close discards them.
    const ready = (): void => {
      socket.pause();
      connection.connectionReady!(() => socket.resume());
    };
    connection._setListeners(() => {
      if (this.options.maxClients && this.connections.size > this.options.maxClients) {
        connection.send(421, `${connection.name} Too many connected clients, try again in a moment`, false);
        return;
      }
      if (this.#pauseMs === 0) {
        ready();
        return;
      }
      const timer = setTimeout(() => {
        socket.off('data', onEarly);
        if (connection._closing || connection._closed) return;
        if (!talked) {
          ready();
          return;
        }
        connection.send(421, `${connection.name} You talk too soon`, false);
        connection.close();
      }, this.#pauseMs);
      timer.unref();
    });
  }
}
