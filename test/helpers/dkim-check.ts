import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DkimDnsRecord } from '../../src/dkim/index.js';
import { dkimpyAvailable, mailauthVerdicts } from '../unit/dkim/verifiers.js';
import { BIN, type CliResult, type TestDir } from './daemon.js';
import type { ReceivedMessage, Sink } from './sink.js';
import { RawSmtp, type Reply } from './smtp-client.js';

/**
 * Like `cli` from daemon.ts, but without blocking the test's event loop, so that several
 * commands (keygen takes a second of CPU) can run at once.
 */
export function cliAsync(t: TestDir, args: string[], input = ''): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, '--config', t.configPath, ...args],
      { encoding: 'utf8', timeout: 30_000 },
      (err, stdout, stderr) => {
        const status = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ status, stdout, stderr });
      },
    );
    child.stdin!.end(input);
  });
}

/** `petrel user add NAME --allow-from DOMAIN…` with the password on stdin; throws unless it succeeds. */
export async function addUserAsync(
  t: TestDir,
  name: string,
  domains: string[],
  password: string,
): Promise<void> {
  const r = await cliAsync(t, ['user', 'add', name, '--allow-from', ...domains], `${password}\n`);
  if (r.status !== 0) throw new Error(`user add failed (${r.status}): ${r.stderr}`);
}

/** The JSON line `petrel dkim keygen|dns --json` prints per key. */
interface CliRecord {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: 'rsa' | 'ed25519';
  readonly name: string;
  readonly type: string;
  readonly value: string;
  readonly strings: string[];
}

function parseRecords(stdout: string): DkimDnsRecord[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const r = JSON.parse(line) as CliRecord;
      if (r.type !== 'TXT') throw new Error(`unexpected record type ${r.type}`);
      // The CLI's JSON has no zone line; the verifiers read only name, value and strings.
      return {
        name: r.name,
        value: r.value,
        strings: r.strings,
        zoneLine: `${r.name}. IN TXT ( ${r.strings.map((s) => `"${s}"`).join(' ')} )`,
      };
    });
}

/** `petrel dkim keygen DOMAIN --selector S --algo A --json`; throws unless it succeeds. */
export async function keygen(
  t: TestDir,
  domain: string,
  selector: string,
  algo: 'rsa' | 'ed25519' = 'rsa',
): Promise<DkimDnsRecord> {
  const r = await cliAsync(t, ['dkim', 'keygen', domain, '--selector', selector, '--algo', algo, '--json']);
  if (r.status !== 0) throw new Error(`dkim keygen ${domain} failed (${r.status}): ${r.stderr}`);
  const [record, ...rest] = parseRecords(r.stdout);
  if (!record || rest.length > 0) throw new Error(`dkim keygen printed ${r.stdout}`);
  return record;
}

/**
 * What a domain owner would publish: the records `petrel dkim dns DOMAIN --json` prints, for
 * every domain given. This is the only source of public keys the verifiers get.
 */
export async function publishedRecords(t: TestDir, ...domains: string[]): Promise<DkimDnsRecord[]> {
  const perDomain = await Promise.all(
    domains.map(async (domain) => {
      const r = await cliAsync(t, ['dkim', 'dns', domain, '--json']);
      if (r.status !== 0) throw new Error(`dkim dns ${domain} failed (${r.status}): ${r.stderr}`);
      return parseRecords(r.stdout);
    }),
  );
  return perDomain.flat();
}

/** Throws when dkimpy (python3-dkim) cannot run: these tests need both verifiers. */
export function requireDkimpy(): void {
  if (!dkimpyAvailable()) throw new Error('dkimpy not found: apt-get install -y python3-dkim');
}

export interface Verdicts {
  /** mailauth's dkimVerify, one per DKIM-Signature field, top first. */
  readonly mailauth: string[];
  /** dkimpy's dkim.verify, one per DKIM-Signature field, top first. */
  readonly dkimpy: boolean[];
}

const BATCH_HELPER = fileURLToPath(new URL('./dkim-verify-batch.py', import.meta.url));
/** Debian's interpreter, where python3-dkim installs (as in test/unit/dkim/verifiers.ts). */
const PYTHON = process.env['PETREL_PYTHON'] ?? '/usr/bin/python3';

/** dkimpy's verdicts for many messages in one Python process; DNS answered from `records`. */
export function dkimpyBatchVerdicts(
  messages: readonly Buffer[],
  records: readonly DkimDnsRecord[],
): Promise<boolean[][]> {
  const request = JSON.stringify({
    messages: messages.map((m) => m.toString('base64')),
    records: Object.fromEntries(records.map((r) => [r.name, r.value])),
  });
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [BATCH_HELPER], { maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dkimpy helper failed: ${stderr || err.message}`));
      else resolve((JSON.parse(stdout) as { results: boolean[][] }).results);
    });
    child.stdin!.end(request);
  });
}

/** Verifies every signature of each message with mailauth and with dkimpy (one Python run for all). */
export async function verifyManyWithBoth(
  messages: readonly Buffer[],
  records: readonly DkimDnsRecord[],
): Promise<Verdicts[]> {
  const [mailauth, dkimpy] = await Promise.all([
    Promise.all(messages.map((m) => mailauthVerdicts(m, records))),
    dkimpyBatchVerdicts(messages, records),
  ]);
  return messages.map((_m, i) => ({ mailauth: mailauth[i]!, dkimpy: dkimpy[i]! }));
}

/** Verifies every signature of `message` with mailauth and with dkimpy, DNS answered from `records`. */
export async function verifyWithBoth(message: Buffer, records: readonly DkimDnsRecord[]): Promise<Verdicts> {
  const [verdicts] = await verifyManyWithBoth([message], records);
  return verdicts!;
}

/** The tags of every DKIM-Signature field in the header block, top first. */
export function dkimSignatures(message: Buffer): Record<string, string>[] {
  const text = message.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const block = end === -1 ? text : text.slice(0, end + 2);
  const out: Record<string, string>[] = [];
  for (const m of block.matchAll(/^dkim-signature[ \t]*:((?:.*\r\n)(?:[ \t].*\r\n)*)/gim)) {
    const tags: Record<string, string> = {};
    for (const part of m[1]!.replace(/\s+/g, '').split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0) tags[part.slice(0, eq)] = part.slice(eq + 1);
    }
    out.push(tags);
  }
  return out;
}

/** `d=`, `s=` and `a=` of each signature, top first, as "d/s/a". */
export function signers(message: Buffer): string[] {
  return dkimSignatures(message).map((t) => `${t['d']}/${t['s']}/${t['a']}`);
}

/** SMTP transparency (RFC 5321 §4.5.2): a line that starts with a dot gets one more. */
export function dotStuff(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
}

/** An authenticated submission session (EHLO, STARTTLS, AUTH PLAIN). */
export async function login(port: number, user: string, password: string): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port);
  await c.login(user, password);
  return c;
}

/**
 * One transaction on an open session: MAIL, RCPT, DATA with `message` (dot-stuffed here).
 * Returns the reply to the final dot; throws when MAIL or RCPT is refused.
 */
export async function transact(
  c: RawSmtp,
  mailFrom: string,
  rcptTo: string,
  message: Buffer,
): Promise<Reply> {
  const mail = await c.command(`MAIL FROM:<${mailFrom}>`);
  if (mail.code !== 250) throw new Error(`MAIL FROM refused: ${mail.text}`);
  const rcpt = await c.command(`RCPT TO:<${rcptTo}>`);
  if (rcpt.code !== 250) throw new Error(`RCPT TO refused: ${rcpt.text}`);
  return c.data(dotStuff(message));
}

/** Resolves with the sink's message for `rcpt` once it has arrived. */
export async function delivered(sink: Sink, rcpt: string, timeoutMs = 15_000): Promise<ReceivedMessage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = sink.messages.find((m) => m.rcptTo.includes(rcpt));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no delivery to ${rcpt} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Reads log lines until one matches; the daemon's logs array grows as it writes. */
export async function logged(
  logs: readonly { msg: string }[],
  msg: string,
  from = 0,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!logs.slice(from).some((l) => l.msg === msg)) {
    if (Date.now() > deadline) throw new Error(`no "${msg}" log line after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
