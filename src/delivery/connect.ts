import { isIP } from 'node:net';
import SMTPConnection, { type SMTPConnectionOptions } from 'nodemailer/lib/smtp-connection';
import { localFailure, outcomeOf, parseReply, type FailureOutcome } from './outcome.js';
import type { MxHost } from './resolver.js';
import { firstLine, type ClientError } from './wire.js';

/**
 * `may`: STARTTLS when offered, any certificate; plaintext when not offered or when the
 * handshake fails. `encrypt`: TLS required, any certificate. `verify`: TLS required with a
 * certificate valid for the MX host name (from the system CAs, or `trustedCa`).
 */
export type TlsPolicy = 'may' | 'encrypt' | 'verify';

export interface SessionTimeouts {
  /** TCP connect. Together with `greetingMs` it also bounds EHLO and STARTTLS. */
  readonly connectMs: number;
  /** Wait for the 220 banner. */
  readonly greetingMs: number;
  /** Inactivity while waiting for any other reply. */
  readonly commandMs: number;
  /** One whole transaction (MAIL FROM to the reply after the final dot). */
  readonly dataMs: number;
}

/** Defaults: shorter than RFC 5321 §4.5.3.2 where waiting longer rarely helps a sender. */
export const DEFAULT_TIMEOUTS: SessionTimeouts = {
  connectMs: 30_000,
  greetingMs: 60_000,
  commandMs: 300_000,
  dataMs: 600_000,
};

export interface SessionOptions {
  /** Name sent with EHLO. */
  readonly hostname: string;
  readonly tls: TlsPolicy;
  readonly timeouts?: Partial<SessionTimeouts>;
  /** Aborts set-up and every send of the session (shutdown). */
  readonly signal?: AbortSignal;
  /** Trust anchors for `verify` instead of the system store (private PKI, tests). */
  readonly trustedCa?: string | Buffer | readonly (string | Buffer)[];
  /** Source address to bind. */
  readonly localAddress?: string;
  /** Credentials for a smarthost (AUTH PLAIN/LOGIN after EHLO and STARTTLS). */
  readonly auth?: { readonly user: string; readonly pass: string };
  /**
   * Re-signs a message that was downgraded to 7 bits for a server without 8BITMIME: replaces
   * the DKIM signatures Petrel added (made over the 8-bit form, which the re-encoding breaks).
   * Without it a downgraded message goes out with its original, now failing, signatures.
   */
  readonly resign?: (message: Buffer) => Promise<Buffer>;
}

export type ConnectResult =
  { ok: true; conn: SMTPConnection } | { ok: false; outcome: FailureOutcome; tlsFailed: boolean };

/** One connection attempt to one host: TCP, greeting, EHLO and STARTTLS per policy. */
export function connect(
  host: MxHost,
  options: SessionOptions,
  timeouts: SessionTimeouts,
  plain: boolean,
): Promise<ConnectResult> {
  const servername = isIP(host.name) === 0 ? host.name : undefined;
  const required = options.tls !== 'may';
  const clientOptions: SMTPConnectionOptions = {
    host: host.address,
    port: host.port,
    servername,
    name: options.hostname,
    secure: false,
    ignoreTLS: plain,
    requireTLS: required,
    opportunisticTLS: !required,
    connectionTimeout: timeouts.connectMs + timeouts.greetingMs,
    greetingTimeout: timeouts.greetingMs,
    socketTimeout: timeouts.commandMs,
    socketCloseTimeout: 2_000,
    localAddress: options.localAddress,
    logger: false,
    tls:
      options.tls === 'verify'
        ? {
            rejectUnauthorized: true,
            servername,
            ...(options.trustedCa ? { ca: caList(options.trustedCa) } : {}),
          }
        : { rejectUnauthorized: false, servername },
  };
  const conn = new SMTPConnection(clientOptions);
  // Without an 'error' listener an EventEmitter error would throw out of the socket handler.
  conn.on('error', () => undefined);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ConnectResult): void => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      conn.removeListener('error', onError);
      conn.removeListener('end', onEnd);
      if (!result.ok) conn.close();
      resolve(result);
    };
    const fail = (err: ClientError): void => {
      // A failed handshake surfaces as a socket error; `upgrading` tells it apart from a lost connection.
      const tlsFailed = err.code === 'ETLS' || conn.upgrading === true;
      finish({ ok: false, outcome: connectFailure(err, host, options.tls, tlsFailed), tlsFailed });
    };
    const onError = (err: ClientError): void => fail(err);
    const onEnd = (): void =>
      fail(Object.assign(new Error('connection closed during set-up'), { code: 'ECONNECTION' }));
    const onAbort = (): void => finish({ ok: false, outcome: abortedOutcome(host.name), tlsFailed: false });
    conn.on('error', onError);
    conn.once('end', onEnd);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) return onAbort();
    conn.connect((err) => {
      if (err) return fail(err as ClientError);
      if (required && !conn.secure) {
        return fail(Object.assign(new Error('session is not encrypted'), { code: 'ETLS' }));
      }
      if (!options.auth) return finish({ ok: true, conn });
      conn.login({ user: options.auth.user, pass: options.auth.pass }, (authErr) => {
        if (!authErr) return finish({ ok: true, conn });
        // Our credentials are wrong or the relay is unwell: the recipient is not at fault.
        const reply = (authErr as ClientError).response ?? firstLine(authErr.message);
        finish({
          ok: false,
          outcome: localFailure(451, '4.7.0', `AUTH with ${host.name} failed: ${reply}`, host.name),
          tlsFailed: false,
        });
      });
    });
  });
}

function caList(ca: string | Buffer | readonly (string | Buffer)[]): (string | Buffer)[] {
  return Array.isArray(ca) ? [...(ca as readonly (string | Buffer)[])] : [ca as string | Buffer];
}

function connectFailure(
  err: ClientError,
  host: MxHost,
  policy: TlsPolicy,
  tlsFailed: boolean,
): FailureOutcome {
  const mx = host.name;
  const where = `${mx} [${host.address}]:${host.port}`;
  const reply = err.response ? parseReply(err.response) : null;
  if (tlsFailed) {
    // Only reached under encrypt/verify (or `may` before its plaintext retry): a policy failure is
    // the sender's requirement, not the recipient's fault, so it is always transient.
    const code = (err as { originalCode?: unknown }).originalCode;
    // OpenSSL's own messages are multi-part dumps; its ERR_SSL_* code says the same in one word.
    const sslCode = typeof code === 'string' && code.startsWith('ERR_SSL_') ? code : null;
    const detail = reply ? `${reply.code} ${reply.text}` : (sslCode ?? firstLine(err.message));
    const enhanced = reply ? '4.7.4' : '4.7.5';
    return localFailure(421, enhanced, `TLS (${policy}) with ${where} failed: ${detail}`, mx);
  }
  if (reply && reply.code >= 400) {
    const outcome = outcomeOf(reply, mx);
    return outcome as FailureOutcome;
  }
  if (err.code === 'ETIMEDOUT') return localFailure(421, '4.4.1', `timeout connecting to ${where}`, mx);
  const cause = (err as { originalCode?: unknown }).originalCode;
  const detail = typeof cause === 'string' ? cause : firstLine(err.message);
  return localFailure(421, '4.4.1', `cannot connect to ${where}: ${detail}`, mx);
}

export function abortedOutcome(mx: string | null): FailureOutcome {
  return localFailure(451, '4.3.2', 'delivery attempt aborted by Petrel', mx);
}
