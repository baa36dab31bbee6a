import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DkimDnsRecord } from '../../src/dkim/index.js';
import type { Daemon } from '../helpers/daemon.js';
import {
  addUserAsync,
  delivered,
  keygen,
  login,
  publishedRecords,
  requireDkimpy,
  signers,
  transact,
  verifyManyWithBoth,
  type Verdicts,
} from '../helpers/dkim-check.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { Sink } from '../helpers/sink.js';

/*
 * DKIM end to end: messages go over SMTP into the real daemon, out through its queue to a
 * sink, and the bytes the sink received are checked by two verifiers that are not Petrel's code
 * (mailauth and dkimpy), with DNS answered from what `petrel dkim dns DOMAIN --json` prints.
 */

const USER = 'app';
const PASS = 'signing pw';
const RSA_EXAMPLE = 'example.com/s1/rsa-sha256';
const DUAL = ['dual.test/r1/rsa-sha256', 'dual.test/e1/ed25519-sha256'];

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

const HEADERS =
  'From: Ann <ann@example.com>\r\nTo: bob@dest.test\r\nSubject: test\r\n' +
  'Date: Mon, 23 Nov 2026 21:18:26 +0000\r\nMessage-ID: <m1@example.com>\r\n';

/** The messages of the "Done when" list, each as its exact submitted bytes. */
const CASES: Record<string, Buffer> = {
  'plain ASCII': latin1(`${HEADERS}\r\nHello Bob,\r\n\r\nthis is plain ASCII.\r\n-- \r\nAnn\r\n`),
  '8-bit UTF-8 body': Buffer.concat([
    latin1(
      `${HEADERS}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`,
    ),
    utf8('Grüße aus Köln — ünïcödé, 日本語, emoji 📨.\r\nŁódź  \t\r\n\tΑθήνα\r\n'),
  ]),
  'UTF-8 in header fields': Buffer.concat([
    latin1('From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>\r\n'),
    utf8('To: Zoë Ångström <zoe@dest.test>\r\nSubject: Grüße  aus   Köln\r\n'),
    latin1(
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
    ),
    utf8('ok ✓\r\n'),
  ]),
  'lines of 998 bytes': Buffer.concat([
    latin1(`${HEADERS}X-Long: ${'h'.repeat(998 - 'X-Long: '.length)}\r\n\r\n`),
    latin1(`${'a'.repeat(998)}\r\n`),
    latin1(`${' '.repeat(997)}x\r\n`),
    // 332 three-byte characters and 2 ASCII bytes: 998 bytes, 334 characters.
    utf8(`${'€'.repeat(332)}ok\r\n`),
    latin1(`${'b '.repeat(499)}\r\nend\r\n`),
  ]),
  'folded and repeated header fields': latin1(
    'from: Ann\r\n <ann@example.com>\r\n' +
      'To: one@dest.test,\r\n\ttwo@dest.test\r\n' +
      'TO: three@dest.test\r\n' +
      'Subject: a subject\r\n   folded over\r\n\t\tthree lines  \r\n' +
      'Cc: c1@dest.test\r\ncc:c2@dest.test\r\nCC:  c3@dest.test  \r\n' +
      'X-Repeat: 1\r\nX-Repeat: 2\r\nX-Repeat:   3   \r\n' +
      'Reply-To:\r\n reply@example.com\r\n' +
      'Date: Mon, 23 Nov 2026 21:18:26 +0000\r\n' +
      'Message-ID: <m2@example.com>\r\n\r\nbody\r\n',
  ),
  'trailing whitespace and empty lines at the end of the body': latin1(
    `${HEADERS}\r\ntext  \t \r\n  indented\t\tline \r\n\r\n \r\n\t\r\n\r\n\r\n  \t\r\n\r\n`,
  ),
  'an empty body': latin1(`${HEADERS}\r\n`),
  'only a header block, without the blank line': latin1(HEADERS),
  'lines that start with a dot (SMTP transparency on both hops)': latin1(
    `${HEADERS}\r\n.\r\n..two dots\r\n.leading dot\r\n. \r\nlast\r\n.\r\n`,
  ),
};

/** Messages other than CASES: From in another domain, or a different envelope sender. */
const OTHERS: Record<string, { mailFrom: string; message: Buffer }> = {
  dual: {
    mailFrom: 'x@dual.test',
    message: latin1('From: x@dual.test\r\nTo: y@dest.test\r\nSubject: dual\r\n\r\nboth\r\n'),
  },
  subdomain: {
    mailFrom: 'letter@news.example.com',
    message: latin1(
      'From: News <letter@news.example.com>\r\nTo: y@dest.test\r\nSubject: news\r\n\r\nnews\r\n',
    ),
  },
  'upper case': {
    mailFrom: 'ann@EXAMPLE.Com',
    message: latin1('From: Ann <ann@EXAMPLE.Com>\r\nTo: y@dest.test\r\nSubject: case\r\n\r\ncase\r\n'),
  },
  idn: {
    mailFrom: 'info@xn--bcher-kva.test',
    message: utf8('From: Bücherei <info@bücher.test>\r\nTo: y@dest.test\r\nSubject: idn\r\n\r\nidn\r\n'),
  },
};

const SEED = Number(process.env['PETREL_DKIM_SEED'] ?? 0x5eed4);
const RANDOM_COUNT = 25;

describe('DKIM signatures on delivered mail', () => {
  let sink: Sink;
  let daemon: Daemon;
  let routed: Routed | undefined;
  let records: DkimDnsRecord[];
  /** Per submission name: what was submitted, what the sink received, and both verdicts on it. */
  const results = new Map<string, { got: Buffer; verdicts: Verdicts }>();
  /** Verdicts on altered copies of the delivered "plain ASCII" message. */
  let tampered: { body: Verdicts; header: Verdicts };
  const random: { name: string; from: string; message: Buffer }[] = [];

  beforeAll(async () => {
    requireDkimpy();
    routed = await startRoutedDaemon({
      user: false,
      prepare: async (dir) => {
        // The account first: it creates the database, which the keygens then share.
        await addUserAsync(dir, USER, ['example.com', 'news.example.com', 'dual.test', 'bücher.test'], PASS);
        await Promise.all([
          keygen(dir, 'example.com', 's1', 'rsa'),
          keygen(dir, 'dual.test', 'r1', 'rsa'),
          keygen(dir, 'dual.test', 'e1', 'ed25519'),
          keygen(dir, 'bücher.test', 'idn', 'ed25519'),
        ]);
        records = await publishedRecords(dir, 'example.com', 'dual.test', 'bücher.test');
      },
    });
    ({ sink, daemon } = routed);

    // Everything goes in over one session and is verified in one dkimpy run: Python starts
    // slowly on a busy machine, and the assertions below only read the results.
    const submissions: [string, string, Buffer][] = [
      ...Object.entries(CASES).map(([name, message]): [string, string, Buffer] => [
        name,
        'ann@example.com',
        message,
      ]),
      ...Object.entries(OTHERS).map(([name, o]): [string, string, Buffer] => [name, o.mailFrom, o.message]),
    ];
    const rng = mulberry32(SEED);
    const froms = ['ann@example.com', 'letter@news.example.com', 'x@dual.test'];
    for (let i = 0; i < RANDOM_COUNT; i++) {
      const from = froms[Math.floor(rng() * froms.length)]!;
      random.push({ name: `random ${i}`, from, message: randomMessage(rng, from) });
    }
    submissions.push(...random.map((r): [string, string, Buffer] => [r.name, r.from, r.message]));
    const rcpts = new Map<string, string>();
    const c = await login(daemon.ports.submission, USER, PASS);
    for (const [i, [name, mailFrom, message]] of submissions.entries()) {
      const rcpt = `m${i}@dest.test`;
      const reply = await transact(c, mailFrom, rcpt, message);
      if (reply.code !== 250) throw new Error(`${name} (seed ${SEED}): ${reply.text}`);
      rcpts.set(name, rcpt);
    }
    c.close();
    await sendWithAttachments(daemon.ports.submission, 'attachments@dest.test');
    rcpts.set('attachments', 'attachments@dest.test');

    const names = [...rcpts.keys()];
    const got = await Promise.all(names.map(async (name) => (await delivered(sink, rcpts.get(name)!)).body));
    const plain = got[names.indexOf('plain ASCII')]!;
    const body = Buffer.from(plain);
    body[body.length - 3] = 'X'.charCodeAt(0);
    const header = latin1(plain.toString('latin1').replace('Subject: test', 'Subject: tesT'));
    const verdicts = await verifyManyWithBoth([...got, body, header], records);
    names.forEach((name, i) => results.set(name, { got: got[i]!, verdicts: verdicts[i]! }));
    tampered = { body: verdicts[got.length]!, header: verdicts[got.length + 1]! };
  }, 60_000);

  afterAll(async () => {
    await routed?.stop();
  });

  it.each(Object.entries(CASES))(
    'signs %s so that mailauth and dkimpy verify it at the sink',
    (name, sent) => {
      const { got, verdicts } = results.get(name)!;
      expect(signers(got)).toEqual([RSA_EXAMPLE]);
      expect(verdicts).toEqual({ mailauth: ['pass'], dkimpy: [true] });
      // Delivery kept the submitted body byte for byte, and the Received field Petrel added is there.
      const blank = sent.indexOf('\r\n\r\n');
      const sentBody = blank === -1 ? Buffer.alloc(0) : sent.subarray(blank + 4);
      expect(got.subarray(got.length - sentBody.length).equals(sentBody)).toBe(true);
      expect(got.toString('latin1')).toMatch(/\r\nReceived: from [^\r]*\r\n\tby petrel\.test \(Petrel\)/);
    },
  );

  it('is checked by verifiers that fail a changed body or a changed signed header field', () => {
    // mailauth reports a body hash mismatch as "neutral" and a bad signature as "fail".
    expect(tampered.body.mailauth).toHaveLength(1);
    expect(tampered.body.mailauth[0]).not.toBe('pass');
    expect(tampered.body.dkimpy).toEqual([false]);
    expect(tampered.header).toEqual({ mailauth: ['fail'], dkimpy: [false] });
  });

  it('signs a message with attachments sent by nodemailer', () => {
    const { got, verdicts } = results.get('attachments')!;
    expect(got.toString('latin1')).toMatch(/Content-Type: multipart\/mixed/);
    expect(signers(got)).toEqual([RSA_EXAMPLE]);
    expect(verdicts).toEqual({ mailauth: ['pass'], dkimpy: [true] });
  });

  it('signs with RSA and Ed25519 when a domain has both keys, RSA first, and both verify', () => {
    const { got, verdicts } = results.get('dual')!;
    expect(signers(got)).toEqual(DUAL);
    expect(verdicts).toEqual({ mailauth: ['pass', 'pass'], dkimpy: [true, true] });
  });

  it("signs a subdomain's From (news.example.com) with its parent's key (d=example.com)", () => {
    const { got, verdicts } = results.get('subdomain')!;
    expect(signers(got)).toEqual([RSA_EXAMPLE]);
    expect(verdicts).toEqual({ mailauth: ['pass'], dkimpy: [true] });
  });

  it('signs a From whose domain is written in upper case with the key of the lower-case domain', () => {
    const { got, verdicts } = results.get('upper case')!;
    expect(signers(got)).toEqual([RSA_EXAMPLE]);
    expect(verdicts).toEqual({ mailauth: ['pass'], dkimpy: [true] });
  });

  it('signs a From with an internationalized domain as d= in A-labels (xn--bcher-kva.test)', () => {
    expect(records.map((r) => r.name)).toContain('idn._domainkey.xn--bcher-kva.test');
    const { got, verdicts } = results.get('idn')!;
    expect(signers(got)).toEqual(['xn--bcher-kva.test/idn/ed25519-sha256']);
    expect(verdicts).toEqual({ mailauth: ['pass'], dkimpy: [true] });
  });

  it(`signs ${RANDOM_COUNT} random messages (seeded) that both verifiers accept at the sink`, () => {
    const expected: Record<string, string[]> = {
      'example.com': [RSA_EXAMPLE],
      'news.example.com': [RSA_EXAMPLE],
      'dual.test': DUAL,
    };
    const failures: string[] = [];
    for (const { name, from, message } of random) {
      const { got, verdicts } = results.get(name)!;
      const want = expected[from.split('@')[1]!]!;
      const ok =
        JSON.stringify(signers(got)) === JSON.stringify(want) &&
        JSON.stringify(verdicts) ===
          JSON.stringify({ mailauth: want.map(() => 'pass'), dkimpy: want.map(() => true) });
      if (!ok) {
        failures.push(
          `${name} (seed ${SEED}): signers ${JSON.stringify(signers(got))} verdicts ${JSON.stringify(verdicts)}\n` +
            `submitted (base64): ${message.toString('base64')}`,
        );
      }
    }
    expect(failures).toEqual([]);
    // The generator did produce what the property is about.
    const all = Buffer.concat(random.map((r) => r.message));
    expect(all.some((b) => b >= 0x80)).toBe(true);
    expect(random.some((r) => /\r\n[ \t]/.test(r.message.toString('latin1').split('\r\n\r\n')[0]!))).toBe(
      true,
    );
    expect(
      random.some((r) =>
        r.message
          .toString('latin1')
          .split('\r\n')
          .some((l) => l.length > 900),
      ),
    ).toBe(true);
  });
});

/** Sends a multipart message with attachments through a nodemailer SMTP transport. */
async function sendWithAttachments(port: number, rcpt: string): Promise<void> {
  const binary = Buffer.alloc(3000);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 131 + 7) % 256;
  const mail = {
    from: '"Ann Example" <ann@example.com>',
    to: rcpt,
    subject: 'Quarterly report — Grüße',
    text: 'See the attached files.\nZeile mit Ümlaut.\n',
    html: '<p>See the <b>attached</b> files. <img src="cid:logo@example.com"></p>',
    attachments: [
      { filename: 'report.bin', content: binary, contentType: 'application/octet-stream' },
      { filename: 'notes.txt', content: 'line one\r\nline two  \r\n\r\n' },
      { filename: 'daten-ü.csv', content: 'a;b\nä;ö\n', contentType: 'text/csv; charset=utf-8' },
      { filename: 'logo.png', content: binary.subarray(0, 200), cid: 'logo@example.com' },
    ],
  };
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: USER, pass: PASS },
  });
  try {
    const info = await transport.sendMail(mail);
    if (!/^250 /.test(info.response)) throw new Error(`attachments: ${info.response}`);
  } finally {
    transport.close();
  }
}

/** A small, seedable PRNG (mulberry32): the same seed gives the same messages. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  'alpha',
  'beta',
  'Grüße',
  'naïve',
  '日本',
  '—',
  'x',
  'QUOTED"',
  '(c)',
  'a;b',
  'Ünïcödé',
  '📨',
  '=?utf-8?q?x?=',
];
const DISPLAY_NAMES = ['Ann', 'Ünïcödé Sender', '"Quoted, Name"', '=?utf-8?q?J=C3=B6rg?=', 'Ann (comment)'];
const NAMES = [
  'To',
  'Cc',
  'Subject',
  'Reply-To',
  'X-Mailer',
  'X-Tag',
  'List-Unsubscribe',
  'Feedback-ID',
  'Keywords',
  'Comments',
  'Bcc',
];

/**
 * A random message that submission accepts: one From at `from`, CRLF only, no NUL, no line over
 * 998 bytes, header values in UTF-8, body bytes anything but NUL, CR and LF.
 */
function randomMessage(rng: () => number, from: string): Buffer {
  const int = (n: number): number => Math.floor(rng() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)]!;
  const oddCase = (name: string): string =>
    rng() < 0.3 ? [...name].map((ch) => (rng() < 0.5 ? ch.toUpperCase() : ch.toLowerCase())).join('') : name;
  const ws = (): string => pick([' ', ' ', '  ', '\t', ' \t ']);
  const value = (): string => {
    let out = rng() < 0.2 ? '' : ws();
    const n = int(8);
    for (let i = 0; i < n; i++) {
      out += pick(WORDS);
      // Folding: CRLF then whitespace, never a continuation line of whitespace alone.
      out += i < n - 1 && rng() < 0.2 ? `\r\n${pick([' ', '\t', '  '])}` : ws();
    }
    return rng() < 0.5 ? out.trimEnd() : out;
  };
  const fields: string[] = [
    `${oddCase('From')}:${ws()}${rng() < 0.5 ? `${pick(DISPLAY_NAMES)} <${from}>` : from}`,
  ];
  for (let i = int(10); i > 0; i--) {
    const name = rng() < 0.3 ? `X-R${int(1000)}` : pick(NAMES);
    fields.splice(int(fields.length + 1), 0, `${oddCase(name)}:${value()}`);
  }
  if (rng() < 0.5) fields.push(`Message-ID: <${int(1e9)}@example.com>`);
  if (rng() < 0.5)
    fields.push(
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit`,
    );
  const lines: Buffer[] = [];
  for (let i = int(30); i > 0; i--) {
    const kind = int(7);
    if (kind === 0) lines.push(Buffer.alloc(0));
    else if (kind === 1) lines.push(latin1(Array.from({ length: 1 + int(4) }, ws).join('')));
    else if (kind === 2)
      lines.push(utf8(Array.from({ length: 1 + int(12) }, () => pick(WORDS) + ws()).join('')));
    else if (kind === 3) lines.push(latin1(`.${pick(['', '.', ' dot', '..'])}`));
    else {
      // Random bytes: 8-bit, controls, spaces and tabs included; only NUL, CR and LF are left out.
      const len = kind === 4 ? 900 + int(99) : int(120);
      const bytes = Buffer.alloc(len);
      for (let j = 0; j < len; j++) {
        let b = 1 + int(255);
        while (b === 0x0a || b === 0x0d) b = 1 + int(255);
        bytes[j] = b;
      }
      lines.push(bytes);
    }
  }
  const body =
    lines.length === 0 ? Buffer.alloc(0) : Buffer.concat(lines.flatMap((l) => [l, latin1('\r\n')]));
  return Buffer.concat([utf8(fields.map((f) => `${f}\r\n`).join('')), latin1('\r\n'), body]);
}
