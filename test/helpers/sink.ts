import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

/** A reply the sink sends instead of its default; `text` goes on the wire verbatim ("4.2.2 Mailbox full"). */
export interface SinkReply {
  readonly code: number;
  readonly text: string;
}

/** What the sink does at the end of DATA: reply, drop the connection, or never answer. */
export type DataAction = SinkReply | 'disconnect' | 'hang';

export interface SinkScript {
  /** Reply to the connection instead of the 220 banner (smtp-server then closes it). */
  readonly greeting?: SinkReply;
  readonly mail?: (address: string) => SinkReply | undefined;
  /** Per-RCPT reply; undefined accepts with 250. */
  readonly rcpt?: (address: string) => SinkReply | undefined;
  /** Reply after the final dot; undefined accepts with "250 2.0.0 Ok: queued as <n>". */
  readonly data?: (message: ReceivedMessage) => DataAction | undefined;
  /** Called when a DATA stream starts (after the 354), before any byte is read. */
  readonly dataStart?: () => void;
  /** Awaited after the final dot, before the message is recorded and answered (a slow server). */
  readonly beforeReply?: () => Promise<void>;
  /** Advertise STARTTLS (default true). */
  readonly starttls?: boolean;
  /** Certificate for STARTTLS; default: a self-signed one for "sink.petrel.test". */
  readonly tls?: { readonly key: string; readonly cert: string };
  /** Offer only TLS 1.0/1.1, so a default Node client's handshake fails. */
  readonly brokenTls?: boolean;
  readonly hide8BITMIME?: boolean;
  readonly hideSMTPUTF8?: boolean;
  readonly hidePIPELINING?: boolean;
  /** Advertised SIZE limit. */
  readonly size?: number;
}

export interface ReceivedMessage {
  readonly sessionId: string;
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** The message bytes exactly as received (dot-unstuffed, without the final dot line). */
  readonly body: Buffer;
  readonly secure: boolean;
  /** What the sink answered. */
  readonly action: DataAction;
  readonly ehloName: string;
  /** The client's address as the sink saw it (which local address Petrel sent from). */
  readonly remoteAddress: string;
}

export interface Sink {
  readonly host: string;
  readonly port: number;
  /** Every message whose DATA completed, whatever the reply. */
  readonly messages: ReceivedMessage[];
  /** Messages answered with 2xx. */
  accepted(): ReceivedMessage[];
  /** Connections opened so far. */
  readonly connections: number;
  /** Most connections that were open at the same time. */
  readonly maxConcurrent: number;
  /** Everything clients sent before any TLS upgrade, decoded as UTF-8 (what went on the wire). */
  plaintextTranscript(): string;
  /** Resolves when `count` messages were received; rejects after `timeoutMs`. */
  waitForMessages(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  close(): Promise<void>;
}

export interface TestPki {
  /** CA certificate to trust (PEM). */
  readonly ca: string;
  /** Leaf certificate for `name`, signed by `ca`, and its key. */
  readonly cert: string;
  readonly key: string;
}

/** A throwaway CA and a leaf certificate for `name` (for tls = verify tests). */
export async function makeTestPki(name: string): Promise<TestPki> {
  const ca = await generate([{ name: 'commonName', value: 'Petrel Test CA' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true },
    ],
  });
  const leaf = await generate([{ name: 'commonName', value: name }], {
    keySize: 2048,
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: name }] },
    ],
  });
  return { ca: ca.cert, cert: leaf.cert, key: leaf.private };
}

let defaultCert: Promise<{ key: string; cert: string }> | undefined;

function selfSigned(): Promise<{ key: string; cert: string }> {
  defaultCert ??= generate([{ name: 'commonName', value: 'sink.petrel.test' }], {
    keySize: 2048,
    algorithm: 'sha256',
  }).then((p) => ({ key: p.private, cert: p.cert }));
  return defaultCert;
}

function replyError(reply: SinkReply): Error {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

/**
 * A scripted SMTP sink on 127.0.0.1 and an ephemeral port (smtp-server, as in its own
 * test/smtp-connection-test.js). Enhanced status codes are not added by the server, so
 * scripted replies reach the client exactly as written.
 */
export async function startSink(script: SinkScript = {}): Promise<Sink> {
  const tls = script.tls ?? (await selfSigned());
  const messages: ReceivedMessage[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let connections = 0;
  let open = 0;
  let maxConcurrent = 0;
  let queued = 0;
  const clientBytes: Buffer[] = [];

  const options: SMTPServerOptions = {
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: true,
    hideSTARTTLS: script.starttls === false,
    // Hidden is not enough: smtp-server still answers a STARTTLS it did not advertise.
    ...(script.starttls === false ? { disabledCommands: ['STARTTLS'] } : {}),
    hide8BITMIME: script.hide8BITMIME ?? false,
    hideSMTPUTF8: script.hideSMTPUTF8 ?? false,
    hidePIPELINING: script.hidePIPELINING ?? false,
    ...(script.size !== undefined ? { size: script.size } : {}),
    authOptional: true,
    logger: false,
    key: tls.key,
    cert: tls.cert,
    ...(script.brokenTls
      ? { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }
      : {}),
    onConnect(session, callback) {
      connections += 1;
      const connection = [...server.connections].find((c) => c.id === session.id);
      // smtp-server decodes A-labels back to Unicode, so the raw bytes are the only witness of the wire form.
      connection?._socket.on('data', (chunk: Buffer) => clientBytes.push(chunk));
      open += 1;
      maxConcurrent = Math.max(maxConcurrent, open);
      callback(script.greeting ? replyError(script.greeting) : null);
    },
    // After STARTTLS the raw socket's own close event is not reliable; the session's is.
    onClose() {
      open -= 1;
    },
    onMailFrom(address, _session, callback) {
      const reply = script.mail?.(address.address);
      callback(reply ? replyError(reply) : null);
    },
    onRcptTo(address, _session, callback) {
      const reply = script.rcpt?.(address.address);
      callback(reply ? replyError(reply) : null);
    },
    onData(stream, session, callback) {
      script.dataStart?.();
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        await script.beforeReply?.();
        const partial = {
          sessionId: session.id,
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          body: Buffer.concat(chunks),
          secure: session.secure,
          ehloName: session.hostNameAppearsAs,
          remoteAddress: session.remoteAddress,
        };
        const action = script.data?.({ ...partial, action: { code: 250, text: '' } }) ?? {
          code: 250,
          text: `2.0.0 Ok: queued as ${++queued}`,
        };
        messages.push({ ...partial, action });
        for (const w of waiters.filter((w) => messages.length >= w.count)) w.resolve();
        if (action === 'disconnect') {
          dropConnection(session);
          return;
        }
        if (action === 'hang') return;
        if (action.code >= 400) callback(replyError(action));
        else callback(null, action.text);
      });
    },
  };
  const server = new SMTPServer(options);
  server.on('error', () => undefined);

  function dropConnection(session: SMTPServerSession): void {
    for (const connection of server.connections) {
      if (connection.id === session.id) connection._socket.destroy();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    messages,
    accepted: () => messages.filter((m) => typeof m.action === 'object' && m.action.code < 300),
    get connections() {
      return connections;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    plaintextTranscript: () => Buffer.concat(clientBytes).toString('utf8'),
    async waitForMessages(count, timeoutMs = 5_000) {
      if (messages.length >= count) return messages;
      let timer: NodeJS.Timeout | undefined;
      const reached = new Promise<void>((resolve) => waiters.push({ count, resolve }));
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`sink: ${messages.length} of ${count} messages after ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([reached, timeout]);
      } finally {
        clearTimeout(timer);
      }
      return messages;
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const connection of server.connections) connection._socket.destroy();
        server.close(() => resolve());
      });
    },
  };
}
