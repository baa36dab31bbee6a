import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { localFailure, outcomeOf, parseReply, type FailureOutcome } from './outcome.js';
import type { WireReply } from './reply-reader.js';
import type { MxHost } from './resolver.js';
import { SmtpWire, type WireFailure } from './smtp-wire.js';
import { featuresOfEhlo, firstLine, NO_FEATURES, type ServerFeatures } from './wire.js';

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
  | { ok: true; wire: SmtpWire; features: ServerFeatures }
  | { ok: false; outcome: FailureOutcome; tlsFailed: boolean };

type Step = { ok: false; outcome: FailureOutcome; tlsFailed: boolean };

/**
 * One connection attempt to one host: TCP, greeting, EHLO (HELO when EHLO is refused and TLS
 * is not required), STARTTLS per policy and AUTH when there are credentials. The whole set-up
 * is bounded by `connectMs + greetingMs`, the greeting alone by `greetingMs`.
 */
export async function connect(
  host: MxHost,
  options: SessionOptions,
  timeouts: SessionTimeouts,
  plain: boolean,
): Promise<ConnectResult> {
  const { signal } = options;
  if (signal?.aborted) return { ok: false, outcome: abortedOutcome(host.name), tlsFailed: false };
  const opened = await SmtpWire.open({
    host: host.address,
    port: host.port,
    connectMs: timeouts.connectMs,
    ...(signal ? { signal } : {}),
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  if (!(opened instanceof SmtpWire)) return failed(opened, host, options.tls, null);
  const wire = opened;
  const onAbort = (): void => wire.fail({ kind: 'aborted', detail: 'aborted' });
  signal?.addEventListener('abort', onAbort, { once: true });
  // One timer for the whole set-up, not one per step: a server that answers every step slowly
  // but within the socket timeout must still not hold the attempt past this bound.
  const bound = setTimeout(
    () => wire.fail({ kind: 'timeout', detail: 'set-up timeout' }),
    timeouts.connectMs + timeouts.greetingMs,
  );
  try {
    if (signal?.aborted) onAbort();
    const result = await setUp(wire, host, options, timeouts, plain);
    if (!result.ok) wire.fail({ kind: 'aborted', detail: 'set-up failed' });
    return result;
  } finally {
    clearTimeout(bound);
    signal?.removeEventListener('abort', onAbort);
  }
}

async function setUp(
  wire: SmtpWire,
  host: MxHost,
  options: SessionOptions,
  timeouts: SessionTimeouts,
  plain: boolean,
): Promise<ConnectResult> {
  const policy = options.tls;
  const required = policy !== 'may';
  wire.setTimeout(timeouts.greetingMs);
  const greeting = await wire.read();
  if (greeting?.code !== 220) return refused(wire, greeting, host, policy, 'greeting');
  wire.setTimeout(timeouts.commandMs);
  let hello = await sayHello(wire, options.hostname, required);
  if (!('features' in hello)) return refused(wire, hello.reply, host, policy, 'EHLO');
  if (!plain && (hello.features.extensions.has('STARTTLS') || required)) {
    const reply = await wire.command('STARTTLS');
    if (reply === null) return failed(wire.failure, host, policy, null);
    if (reply.code !== 220) {
      // Refused STARTTLS under `may`: the session goes on in plaintext with what EHLO offered.
      if (required) return tlsFailure(host, policy, reply.raw);
    } else {
      const failure = await wire.upgrade(tlsOptions(host, options));
      if (failure) return failed(failure, host, policy, null);
      hello = await sayHello(wire, options.hostname, required);
      if (!('features' in hello)) return refused(wire, hello.reply, host, policy, 'EHLO');
    }
  }
  if (required && !wire.secure) return tlsFailure(host, policy, null);
  if (options.auth) {
    const refusal = await authenticate(wire, hello.features, options.auth);
    if (refusal !== null) {
      // Our credentials are wrong or the relay is unwell: the recipient is not at fault.
      const text = `AUTH with ${host.name} failed: ${refusal}`;
      return { ok: false, outcome: localFailure(451, '4.7.0', text, host.name), tlsFailed: false };
    }
  }
  return { ok: true, wire, features: hello.features };
}

/** EHLO, or HELO when EHLO is refused (not when TLS is required: HELO cannot offer STARTTLS). */
async function sayHello(
  wire: SmtpWire,
  name: string,
  required: boolean,
): Promise<{ features: ServerFeatures } | { reply: WireReply | null }> {
  const ehlo = await wire.command(`EHLO ${name}`);
  if (ehlo !== null && ehlo.code === 250) return { features: featuresOfEhlo(ehlo.raw) };
  if (ehlo === null || ehlo.code === 421 || required) return { reply: ehlo };
  const helo = await wire.command(`HELO ${name}`);
  if (helo !== null && helo.code === 250) return { features: NO_FEATURES };
  return { reply: helo };
}

/** Null when authenticated, else the server's refusal (or why there was none). */
async function authenticate(
  wire: SmtpWire,
  features: ServerFeatures,
  auth: { readonly user: string; readonly pass: string },
): Promise<string | null> {
  const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
  let reply: WireReply | null;
  if (features.auth.has('LOGIN') && !features.auth.has('PLAIN')) {
    reply = await wire.command('AUTH LOGIN');
    if (reply?.code === 334) reply = await wire.command(b64(auth.user));
    if (reply?.code === 334) reply = await wire.command(b64(auth.pass));
  } else {
    reply = await wire.command(`AUTH PLAIN ${b64(`\u0000${auth.user}\u0000${auth.pass}`)}`);
  }
  if (reply === null) return `connection lost: ${wire.failure?.detail ?? 'closed'}`;
  return reply.code === 235 ? null : reply.raw;
}

function tlsOptions(host: MxHost, options: SessionOptions): ConnectionOptions {
  const servername = isIP(host.name) === 0 ? host.name : undefined;
  const base = { host: host.name, ...(servername ? { servername } : {}) };
  if (options.tls !== 'verify') return { ...base, rejectUnauthorized: false };
  return {
    ...base,
    rejectUnauthorized: true,
    ...(options.trustedCa ? { ca: caList(options.trustedCa) } : {}),
  };
}

function caList(ca: string | Buffer | readonly (string | Buffer)[]): (string | Buffer)[] {
  return Array.isArray(ca) ? [...(ca as readonly (string | Buffer)[])] : [ca as string | Buffer];
}

/** A step answered with something other than what it needed, or not answered at all. */
function refused(
  wire: SmtpWire,
  reply: WireReply | null,
  host: MxHost,
  policy: TlsPolicy,
  step: string,
): Step {
  if (reply === null) return failed(wire.failure, host, policy, null);
  return failed({ kind: 'protocol', detail: `unexpected ${step} reply` }, host, policy, reply.raw);
}

function tlsFailure(host: MxHost, policy: TlsPolicy, raw: string | null): Step {
  return failed({ kind: 'tls', detail: 'session is not encrypted' }, host, policy, raw);
}

function failed(failure: WireFailure | null, host: MxHost, policy: TlsPolicy, raw: string | null): Step {
  const mx = host.name;
  const where = `${mx} [${host.address}]:${host.port}`;
  const kind = failure?.kind ?? 'lost';
  if (kind === 'aborted') return { ok: false, outcome: abortedOutcome(mx), tlsFailed: false };
  const reply = parseReply(raw ?? failure?.reply ?? '');
  if (kind === 'tls') {
    // Only reached under encrypt/verify (or `may` before its plaintext retry): a policy failure is
    // the sender's requirement, not the recipient's fault, so it is always transient.
    const code = failure?.code;
    // OpenSSL's own messages are multi-part dumps; its ERR_SSL_* code says the same in one word.
    const sslCode = code?.startsWith('ERR_SSL_') ? code : null;
    const detail = reply
      ? `${reply.code} ${reply.text}`
      : (sslCode ?? firstLine(failure?.detail ?? 'handshake failed'));
    const enhanced = reply ? '4.7.4' : '4.7.5';
    const outcome = localFailure(421, enhanced, `TLS (${policy}) with ${where} failed: ${detail}`, mx);
    return { ok: false, outcome, tlsFailed: true };
  }
  if (reply && reply.code >= 400)
    return { ok: false, outcome: outcomeOf(reply, mx) as FailureOutcome, tlsFailed: false };
  if (kind === 'timeout') {
    return {
      ok: false,
      outcome: localFailure(421, '4.4.1', `timeout connecting to ${where}`, mx),
      tlsFailed: false,
    };
  }
  const detail =
    failure?.code ?? (reply ? `${reply.code} ${reply.text}` : firstLine(failure?.detail ?? 'closed'));
  const outcome = localFailure(421, '4.4.1', `cannot connect to ${where}: ${detail}`, mx);
  return { ok: false, outcome, tlsFailed: false };
}

export function abortedOutcome(mx: string | null): FailureOutcome {
  return localFailure(451, '4.3.2', 'delivery attempt aborted by Petrel', mx);
}
