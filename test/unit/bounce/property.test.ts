/**
 * Property tests: the classifier reads untrusted mail, so on any input (random MIME, truncated or
 * mangled real bounces) it must return promptly, never throw, and always give a well-formed reading.
 * The generator is seeded, so a failure names a case that can be replayed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyMessage, type BounceReading } from '../../../src/bounce/index.js';

const SEED = 0x5eed_b0c5;
const CASES = 2000;
const CASE_LIMIT_MS = 1000;

/** mulberry32: small, fast, good enough to drive a fuzzer. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, list: readonly T[]): T => list[int(r, list.length)]!;

const FIXTURES_DIR = new URL('../../../fixtures/bounces/', import.meta.url);
const SAMPLES: readonly Buffer[] = ['bsd/', 'dos/', 'formats/', '']
  .flatMap((sub) => {
    try {
      return readdirSync(new URL(sub, FIXTURES_DIR))
        .filter((n) => n.endsWith('.eml'))
        .map((n) => new URL(`${sub}${n}`, FIXTURES_DIR));
    } catch {
      return [];
    }
  })
  .map((u) => readFileSync(u));

const HEADER_NAMES = [
  'From',
  'To',
  'Subject',
  'Content-Type',
  'Content-Transfer-Encoding',
  'X-Failed-Recipients',
  'Auto-Submitted',
  'Return-Path',
  'Message-ID',
  'Final-Recipient',
  'Original-Recipient',
  'Action',
  'Status',
  'Diagnostic-Code',
  'Feedback-Type',
  'Original-Rcpt-To',
  'Precedence',
];
const TYPES = [
  'multipart/report; report-type=delivery-status',
  'multipart/report; report-type=feedback-report',
  'multipart/mixed',
  'multipart/alternative',
  'message/rfc822',
  'message/delivery-status',
  'message/global-delivery-status',
  'message/feedback-report',
  'text/rfc822-headers',
  'text/plain; charset=utf-8',
  'text/plain; charset=iso-2022-jp',
  'text/plain; charset=x-no-such-charset',
  'text/html',
  'application/octet-stream',
  'garbage',
];
const PHRASES = [
  '550 5.1.1 <user@example.com>: Recipient address rejected: User unknown',
  'host mx.example.com[192.0.2.1] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command)',
  'Final-Recipient: rfc822; a@example.org',
  'Action: failed',
  'Status: 5.7.1',
  'Diagnostic-Code: smtp; 554 5.7.1 blocked using zen.spamhaus.org',
  'Action: delayed',
  'Status: 9.9.9.9.9',
  'rcpt to: <b@example.net>',
  '<<< 550-5.7.26 unauthenticated',
  '>>> DATA',
  'The following addresses had permanent fatal errors',
  '----- Original message -----',
  'Feedback-Type: abuse',
  '{"notificationType":"Bounce","bounce":{"bouncedRecipients":[{"emailAddress":"x@example.com"}]}}',
  '=?utf-8?B?5a6b5YWI5LiN5piO?=',
  '=?iso-8859-1?Q?r=E9ponse_automatique?=',
  'user@',
  '@example.com',
  'a'.repeat(300) + '@' + 'b'.repeat(70) + '.com',
];

function randomBytes(r: Rand, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(int(r, 256));
  return s;
}

function randomText(r: Rand): string {
  const lines: string[] = [];
  const n = int(r, 12);
  for (let i = 0; i < n; i++) {
    const choice = r();
    if (choice < 0.5) lines.push(pick(r, PHRASES));
    else if (choice < 0.7) lines.push(`${pick(r, HEADER_NAMES)}: ${pick(r, PHRASES)}`);
    else if (choice < 0.8) lines.push(randomBytes(r, int(r, 80)));
    else if (choice < 0.9)
      lines.push(`--${pick(r, ['b', 'B1', '', '-', 'boundary', '==x'])}${r() < 0.3 ? '--' : ''}`);
    else lines.push(`\t${pick(r, PHRASES)}`);
  }
  return lines.join(pick(r, ['\n', '\r\n', '\r']));
}

/** A random, possibly inconsistent MIME entity nested up to `depth` levels. */
function randomEntity(r: Rand, depth: number): string {
  const headers: string[] = [];
  const type = pick(r, TYPES);
  const boundary = pick(r, ['b', 'B1', 'x--y', '', '=_"odd"', 'a'.repeat(80)]);
  const declared = r() < 0.8 ? boundary : pick(r, ['other', 'b', '']);
  headers.push(`Content-Type: ${type}${r() < 0.8 ? `; boundary="${declared}"` : ''}`);
  if (r() < 0.3)
    headers.push(`Content-Transfer-Encoding: ${pick(r, ['base64', 'quoted-printable', '8bit', 'x-uue'])}`);
  const extra = int(r, 5);
  for (let i = 0; i < extra; i++) headers.push(`${pick(r, HEADER_NAMES)}: ${pick(r, PHRASES)}`);
  if (r() < 0.2) headers.push(' folded continuation without a header');
  let body: string;
  if (type.startsWith('multipart/') && depth > 0) {
    const parts = int(r, 4);
    const chunks: string[] = [];
    for (let i = 0; i < parts; i++) chunks.push(`--${boundary}\n${randomEntity(r, depth - 1)}`);
    body = `${r() < 0.3 ? randomText(r) : ''}\n${chunks.join('\n')}\n${r() < 0.7 ? `--${boundary}--\n` : ''}`;
  } else if ((type.startsWith('message/rfc822') || type.startsWith('text/rfc822')) && depth > 0) {
    body = randomEntity(r, depth - 1);
  } else if (r() < 0.2) {
    body = Buffer.from(randomText(r), 'latin1').toString('base64');
  } else {
    body = randomText(r);
  }
  return `${headers.join('\n')}\n${r() < 0.9 ? '\n' : ''}${body}`;
}

/** A real sample, mangled: truncated, spliced with random bytes or boundaries, or wrapped in multiparts. */
function mutate(r: Rand, sample: Buffer): string {
  let text = sample.toString('latin1');
  const steps = 1 + int(r, 3);
  for (let s = 0; s < steps; s++) {
    const at = int(r, text.length + 1);
    switch (int(r, 7)) {
      case 0:
        text = text.slice(0, at);
        break;
      case 1:
        text = text.slice(0, at) + randomBytes(r, 1 + int(r, 200)) + text.slice(at);
        break;
      case 2:
        text = `${text.slice(0, at)}\n--${pick(r, ['b', 'B1', '=_', ''])}${r() < 0.5 ? '--' : ''}\n${text.slice(at)}`;
        break;
      case 3: {
        const wraps = 1 + int(r, 15);
        for (let i = 0; i < wraps; i++)
          text = `Content-Type: multipart/mixed; boundary="w${i}"\n\n--w${i}\n${text}\n--w${i}--\n`;
        break;
      }
      case 4:
        text = text.slice(0, at) + text.slice(at + int(r, 500));
        break;
      case 5:
        text = text.replace(/\n/g, pick(r, ['\r\n', '\r', '\n\n']));
        break;
      default:
        text = text.slice(0, at) + randomEntity(r, 3) + text.slice(at);
    }
  }
  return text;
}

const KINDS = new Set(['dsn', 'arf', 'autoreply', 'none']);
const CATEGORIES = new Set(['hard', 'soft', 'complaint', 'none']);

/** Every way a reading can be malformed; empty when it is well formed. */
function problems(reading: BounceReading): string[] {
  const out: string[] = [];
  if (!KINDS.has(reading.kind)) out.push(`kind ${String(reading.kind)}`);
  if (!Array.isArray(reading.results)) return [...out, 'results not an array'];
  if (reading.kind === 'none' && reading.results.length > 0) out.push('kind none with results');
  if (reading.kind !== 'none' && reading.results.length === 0)
    out.push(`kind ${reading.kind} without results`);
  if (typeof reading.originalHeaders !== 'object' || reading.originalHeaders === null)
    out.push('originalHeaders');
  else
    for (const [k, v] of Object.entries(reading.originalHeaders))
      if (typeof v !== 'string' || k !== k.toLowerCase()) out.push(`original header ${k}`);
  for (const r of reading.results) {
    if (r.kind !== reading.kind) out.push(`result kind ${r.kind} in a ${reading.kind} reading`);
    if (!CATEGORIES.has(r.category)) out.push(`category ${String(r.category)}`);
    if (r.recipient !== null && (typeof r.recipient !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(r.recipient)))
      out.push(`recipient ${String(r.recipient)}`);
    if (r.recipient !== null && r.recipient !== r.recipient.toLowerCase())
      out.push('recipient not lowercased');
    if (r.status !== null && !/^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status)) out.push(`status ${r.status}`);
    if (r.replyCode !== null && !(Number.isInteger(r.replyCode) && r.replyCode >= 200 && r.replyCode < 600))
      out.push(`replyCode ${r.replyCode}`);
    if (r.diagnostic !== null && (r.diagnostic.length > 1000 || /[\r\n]/.test(r.diagnostic)))
      out.push('diagnostic not one short line');
    if (r.kind === 'dsn' && r.reason === null) out.push('dsn without reason');
    if (r.kind === 'arf' && (r.category !== 'complaint' || !r.feedbackType)) out.push('complaint malformed');
    if (r.category === 'hard' && r.status?.startsWith('4.') && r.action === 'delayed')
      out.push('delayed failure called hard');
  }
  return out;
}

describe('classifyMessage on random and mangled input', () => {
  it('has samples to mangle', () => {
    expect(SAMPLES.length).toBeGreaterThan(10);
  });

  it(`never throws, never hangs and always reads well formed (${CASES} seeded cases)`, () => {
    const r = prng(SEED);
    const bad: string[] = [];
    let slowest = 0;
    for (let i = 0; i < CASES; i++) {
      const kind = r();
      const input =
        kind < 0.4
          ? randomEntity(r, 1 + int(r, 6))
          : kind < 0.95
            ? mutate(r, pick(r, SAMPLES))
            : randomBytes(r, int(r, 4096));
      const raw = Buffer.from(input, 'latin1');
      const start = performance.now();
      let reading: BounceReading;
      try {
        reading = classifyMessage(raw);
      } catch (err) {
        bad.push(`case ${i}: threw ${String(err)}`);
        continue;
      }
      const ms = performance.now() - start;
      slowest = Math.max(slowest, ms);
      if (ms > CASE_LIMIT_MS) bad.push(`case ${i}: took ${ms.toFixed(0)} ms`);
      const p = problems(reading);
      if (p.length > 0) bad.push(`case ${i}: ${p.join('; ')}`);
    }
    expect(bad.slice(0, 20)).toEqual([]);
    expect(slowest).toBeLessThan(CASE_LIMIT_MS);
  });

  it('reads every prefix of a real bounce without failing', () => {
    const sample = SAMPLES[0]!;
    const step = Math.max(1, Math.floor(sample.length / 300));
    for (let end = 0; end <= sample.length; end += step) {
      expect(problems(classifyMessage(sample.subarray(0, end)))).toEqual([]);
    }
  });
});

describe('classifyMessage with many recipients', () => {
  function bigDsn(n: number): Buffer {
    const human: string[] = [];
    const fields: string[] = [];
    for (let i = 0; i < n; i++) {
      const to = `user${i}@example.com`;
      human.push(
        `<${to}>: host mx.example.com[192.0.2.1] said: 550 5.1.1 <${to}>: Recipient address rejected: User unknown in local recipient table (in reply to RCPT TO command)`,
      );
      fields.push(
        `Final-Recipient: rfc822; ${to}\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <${to}>: unknown reason ${i}\n`,
      );
    }
    return Buffer.from(
      'From: MAILER-DAEMON@example.org\nTo: sender@example.org\nSubject: Undelivered Mail Returned to Sender\n' +
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n' +
        `--B\nContent-Type: text/plain\n\nThis is the mail system at host example.org.\n\n${human.join('\n\n')}\n\n` +
        `--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; example.org\n\n${fields.join('\n')}\n` +
        '--B\nContent-Type: text/rfc822-headers\n\nFrom: sender@example.org\nSubject: hi\n\n--B--\n',
    );
  }

  it('reads all 100 recipients of a DSN in under 100 ms', () => {
    const raw = bigDsn(100);
    classifyMessage(raw); // warm up the JIT
    const times: number[] = [];
    let reading: BounceReading | null = null;
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      reading = classifyMessage(raw);
      times.push(performance.now() - start);
    }
    expect(reading!.results).toHaveLength(100);
    expect(reading!.results[42]).toMatchObject({
      recipient: 'user42@example.com',
      status: '5.1.1',
      reason: 'userunknown',
      category: 'hard',
    });
    expect(Math.min(...times)).toBeLessThan(100);
  });
});
