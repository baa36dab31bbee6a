import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { ConfigError, systemClock, type Clock } from '../shared/index.js';
import {
  canonicalizeHeaderRelaxed,
  hashBodyRelaxed,
  splitMessage,
  type RawHeaderField,
} from './canonicalize.js';

/** The two signing algorithms Petrel emits (RFC 6376 §3.3, RFC 8463). */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** One signing identity: the `d=` and `s=` of a signature and the private key behind them. */
export interface DkimKey {
  /** `d=`, as an A-label (punycode) domain. */
  readonly domain: string;
  /** `s=`; the public key lives at `<selector>._domainkey.<domain>`. */
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  /** Parsed once (see KeyCache / parsePrivateKey); RSA of at least 1024 bits, or Ed25519. */
  readonly privateKey: KeyObject;
}

export interface SignerOptions {
  /** Source of `t=`; defaults to the system clock. */
  readonly clock?: Clock;
  /** When set, every signature carries `x=` this many seconds after `t=`. */
  readonly expireAfterSeconds?: number;
}

/** Signs messages; holds no per-message state, so one instance serves the whole process. */
export interface Signer {
  /**
   * Returns the `DKIM-Signature` header fields (folded, each CRLF-terminated, one per key, in
   * key order) to prepend to `message`. Canonicalization is relaxed/relaxed; the body hash is
   * computed once and shared by all signatures. Signing runs on the libuv thread pool.
   *
   * `message` must use CRLF line endings. Signed fields are those of {@link SIGNED_HEADERS}
   * present in the message, every occurrence, with `from` listed once more than it occurs so
   * that no From can be added later. Fields prepended later (Received, another signature) do
   * not affect the signature. Resolves to an empty Buffer when `keys` is empty.
   * Rejects with ConfigError when a key does not fit its algorithm or names an invalid domain.
   */
  sign(message: Buffer, keys: readonly DkimKey[]): Promise<Buffer>;
}

/**
 * Header fields Petrel signs when present (RFC 6376 §5.4.1 recommendations plus the bulk-mail
 * fields receivers judge: List-Unsubscribe for RFC 8058 one-click, Feedback-ID for Gmail FBL).
 */
export const SIGNED_HEADERS: readonly string[] = [
  'from',
  'to',
  'cc',
  'subject',
  'date',
  'message-id',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'reply-to',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'feedback-id',
];

const LINE_WIDTH = 76;
const NAME_PATTERN =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$/;

/** Creates a {@link Signer}. */
export function createSigner(options: SignerOptions = {}): Signer {
  const clock = options.clock ?? systemClock;
  const expireAfter = options.expireAfterSeconds;
  return {
    async sign(message, keys) {
      if (keys.length === 0) return Buffer.alloc(0);
      for (const key of keys) checkKey(key);
      const { headers, body } = splitMessage(message);
      const bodyHash = (await hashBodyRelaxed(body)).toString('base64');
      const { names, canonical } = selectHeaders(headers);
      const t = Math.floor(clock.now() / 1000);
      const x = expireAfter === undefined ? undefined : t + Math.max(1, Math.floor(expireAfter));
      const fields = await Promise.all(
        keys.map(async (key) => {
          const unsigned = signatureField(key, names, bodyHash, t, x);
          const data = Buffer.from(canonical + canonicalizeHeaderRelaxed(unsigned).slice(0, -2), 'latin1');
          const signature = await signAsync(key, data);
          return unsigned + foldSignature(signature.toString('base64'), lastLineLength(unsigned)) + '\r\n';
        }),
      );
      return Buffer.from(fields.join(''), 'latin1');
    },
  };
}

/**
 * Picks the fields to sign. RFC 6376 §5.4.2: repeated names select instances from the bottom
 * up, and a name beyond the last instance selects nothing, which is what over-signing From uses.
 */
function selectHeaders(headers: readonly RawHeaderField[]): { names: string[]; canonical: string } {
  const byName = new Map<string, string[]>();
  for (const field of headers) {
    if (!SIGNED_HEADERS.includes(field.name)) continue;
    const list = byName.get(field.name);
    if (list) list.push(field.text);
    else byName.set(field.name, [field.text]);
  }
  const names: string[] = [];
  let canonical = '';
  for (const name of SIGNED_HEADERS) {
    const instances = byName.get(name) ?? [];
    for (let i = instances.length - 1; i >= 0; i--) {
      names.push(name);
      canonical += canonicalizeHeaderRelaxed(instances[i]!);
    }
    if (name === 'from') names.push('from');
  }
  return { names, canonical };
}

/** The folded DKIM-Signature field up to and including `b=`, with the signature left empty. */
function signatureField(
  key: DkimKey,
  names: string[],
  bodyHash: string,
  t: number,
  x: number | undefined,
): string {
  const pieces: { text: string; glue: string }[] = [
    { text: 'v=1;', glue: ' ' },
    { text: `a=${key.algorithm};`, glue: ' ' },
    { text: 'c=relaxed/relaxed;', glue: ' ' },
    { text: `d=${key.domain};`, glue: ' ' },
    { text: `s=${key.selector};`, glue: ' ' },
    { text: `t=${t};`, glue: ' ' },
  ];
  if (x !== undefined) pieces.push({ text: `x=${x};`, glue: ' ' });
  // h= may fold at its colons (FWS is allowed around them), so each name is its own piece.
  names.forEach((name, i) => {
    const last = i === names.length - 1;
    pieces.push({ text: `${i === 0 ? 'h=' : ''}${name}${last ? ';' : ':'}`, glue: i === 0 ? ' ' : '' });
  });
  pieces.push({ text: `bh=${bodyHash};`, glue: ' ' }, { text: 'b=', glue: ' ' });
  let out = 'DKIM-Signature:';
  let lineLength = out.length;
  for (const { text, glue } of pieces) {
    if (lineLength + glue.length + text.length > LINE_WIDTH) {
      out += `\r\n ${text}`;
      lineLength = 1 + text.length;
    } else {
      out += glue + text;
      lineLength += glue.length + text.length;
    }
  }
  return out;
}

/**
 * Folds the base64 signature after `b=`. Verifiers delete the whole `b=` value, whitespace
 * included, so the folding does not change what was signed; the first chunk stays on the `b=`
 * line so that the signed text (ending in `b=`) and the verifier's view agree.
 */
function foldSignature(signature: string, used: number): string {
  const first = Math.max(8, LINE_WIDTH - used);
  let out = signature.slice(0, first);
  for (let i = first; i < signature.length; i += LINE_WIDTH - 1) {
    out += `\r\n ${signature.slice(i, i + LINE_WIDTH - 1)}`;
  }
  return out;
}

function lastLineLength(text: string): number {
  return text.length - (text.lastIndexOf('\r\n') + 2);
}

function signAsync(key: DkimKey, data: Buffer): Promise<Buffer> {
  // RFC 8463 §3: ed25519-sha256 signs the SHA-256 digest of the header data with PureEdDSA.
  const [algorithm, input] =
    key.algorithm === 'rsa-sha256' ? ['sha256', data] : [null, createHash('sha256').update(data).digest()];
  return new Promise((resolve, reject) => {
    cryptoSign(algorithm, input, key.privateKey, (err, signature) => {
      if (err) reject(err);
      else resolve(signature);
    });
  });
}

function checkKey(key: DkimKey): void {
  const where = `dkim key ${key.selector}._domainkey.${key.domain}`;
  if (!NAME_PATTERN.test(key.domain) || !NAME_PATTERN.test(key.selector)) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `${where}: domain and selector must be ASCII host names`);
  }
  const { privateKey } = key;
  const expected = key.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== expected) {
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `${where}: not an ${expected} private key for ${key.algorithm}`,
    );
  }
  if (expected === 'rsa' && (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) < 1024) {
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `${where}: RSA keys shorter than 1024 bits fail verification`,
    );
  }
}
