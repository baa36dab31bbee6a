import type { Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

interface ConnectionInternals {
  _setListeners?: (done: () => void) => void;
  connectionReady?: () => void;
  send(code: number, text: string, context?: string | false): void;
  readonly name: string;
  init(): void;
}

/**
 * An smtp-server that greets at once. smtp-server pauses 100 ms before every banner to catch
 * early talkers (spam bots on port 25); on authenticated submission that pause only caps the
 * rate of clients that open a connection per message (sessions ÷ 0.1 s). The steps are those
 * of smtp-server 3.21's own connect(), minus the timer; if its internals ever change, it falls
 * back to the stock behaviour rather than break.
 */
export class PromptSMTPServer extends SMTPServer {
  override connect(socket: Socket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    const connection = new SMTPConnection(this, socket, socketOptions) as unknown as ConnectionInternals & SMTPConnection;
    this.connections.add(connection);
    connection.on('error', (err: Error) => this.emit('error', err));
    connection.on('connect', (data: unknown) => this.emit('connect', data));
    if (typeof connection._setListeners !== 'function' || typeof connection.connectionReady !== 'function') {
      connection.init();
      return;
    }
    connection._setListeners(() => {
      if (this.options.maxClients && this.connections.size > this.options.maxClients) {
        connection.send(421, `${connection.name} Too many connected clients, try again in a moment`, false);
        return;
      }
      connection.connectionReady!();
    });
  }
}
