import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface Reply {
  code: number;
  lines: string[];
  text: string;
}

/**
 * A deliberately low-level SMTP client: it writes exactly the bytes a test gives it, so tests
 * can send what a well-behaved library never would (bare LF, SIZE= lies, AUTH before TLS).
 */
export class RawSmtp {
  #socket: Socket | TLSSocket;
  #buffer = '';
  #waiters: ((r: Reply) => void)[] = [];
  #replies: Reply[] = [];
  closed = false;

  private constructor(socket: Socket | TLSSocket) {
    this.#socket = socket;
    this.#attach();
  }

  static async connect(port: number, opts: { tls?: boolean; localAddress?: string } = {}): Promise<RawSmtp> {
    const socket = opts.tls
      ? tlsConnect({
          port,
          host: '127.0.0.1',
          rejectUnauthorized: false,
          ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        })
      : netConnect({
          port,
          host: '127.0.0.1',
          ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        });
    await new Promise<void>((res, rej) => {
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => res());
      socket.once('error', rej);
    });
    const client = new RawSmtp(socket);
    const greeting = await client.read();
    if (greeting.code !== 220) throw new Error(`bad greeting ${greeting.text}`);
    return client;
  }

  #attach(): void {
    this.#socket.on('data', (d: Buffer) => {
      this.#buffer += d.toString('utf8');
      let lines: string[] = [];
      let idx: number;
      while ((idx = this.#buffer.indexOf('\r\n')) !== -1) {
        const line = this.#buffer.slice(0, idx);
        this.#buffer = this.#buffer.slice(idx + 2);
        lines.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const reply: Reply = { code: Number(line.slice(0, 3)), lines, text: lines.join('\n') };
          lines = [];
          const w = this.#waiters.shift();
          if (w) w(reply);
          else this.#replies.push(reply);
        }
      }
      if (lines.length) this.#buffer = lines.map((l) => `${l}\r\n`).join('') + this.#buffer;
    });
    this.#socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w({ code: 0, lines: [], text: '(closed)' });
    });
    this.#socket.on('error', () => undefined);
  }

  read(): Promise<Reply> {
    const r = this.#replies.shift();
    if (r) return Promise.resolve(r);
    if (this.closed) return Promise.resolve({ code: 0, lines: [], text: '(closed)' });
    return new Promise((res) => this.#waiters.push(res));
  }

  write(data: string | Buffer): void {
    this.#socket.write(data);
  }

  async command(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  async startTls(): Promise<void> {
    const r = await this.command('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.text}`);
    const plain = this.#socket;
    plain.removeAllListeners('data');
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((res, rej) => {
      secure.once('secureConnect', () => res());
      secure.once('error', rej);
    });
    this.#socket = secure;
    this.#buffer = '';
    this.#attach();
  }

  /** EHLO, STARTTLS, EHLO, AUTH PLAIN; throws unless each step succeeds. */
  async login(user: string, password: string): Promise<void> {
    await this.command('EHLO client.test');
    await this.startTls();
    await this.command('EHLO client.test');
    const token = Buffer.from(`\0${user}\0${password}`).toString('base64');
    const r = await this.command(`AUTH PLAIN ${token}`);
    if (r.code !== 235) throw new Error(`AUTH failed: ${r.text}`);
  }

  /** DATA, the given bytes (already dot-stuffed), then the final dot. */
  async data(message: Buffer | string): Promise<Reply> {
    const r = await this.command('DATA');
    if (r.code !== 354) return r;
    this.write(message);
    const text = typeof message === 'string' ? message : message.toString('latin1');
    this.write(text.endsWith('\r\n') ? '.\r\n' : '\r\n.\r\n');
    return this.read();
  }

  close(): void {
    this.#socket.end();
  }
}
