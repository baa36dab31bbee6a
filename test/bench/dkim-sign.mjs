// Micro-measurement, not a test: Petrel's DKIM signer against mailauth's dkimSign.
// Usage: npm run build && node test/bench/dkim-sign.mjs [messages=5000] [concurrency=32] [rounds=3]
// Both sign the same 5 KB messages with the same RSA-2048 key, relaxed/relaxed, with `concurrency`
// messages in flight (as concurrent SMTP sessions would have). mailauth gets the PEM text, which
// is how its API takes keys. The floor is Node's async RSA signing alone, the most any signer can
// reach here. Reports msg/s, CPU per message (all threads) and the event-loop delay while signing.
import { Buffer } from 'node:buffer';
import { sign as cryptoSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { createSigner, parsePrivateKey } from '../../dist/dkim/index.js';

const count = Number(process.argv[2] ?? 5000);
const concurrency = Number(process.argv[3] ?? 32);
const rounds = Number(process.argv[4] ?? 3);
const pem = readFileSync(fileURLToPath(new URL('../../fixtures/dkim/test-key.pem', import.meta.url)), 'utf8');

function message(i) {
  const headers =
    `From: News <news@example.com>\r\nTo: user${i}@example.org\r\nSubject: Newsletter ${i}\r\n` +
    `Date: Sat, 01 Mar 2025 12:00:00 +0000\r\nMessage-ID: <${i}.bench@example.com>\r\nMIME-Version: 1.0\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n' +
    `List-Unsubscribe: <https://example.com/u/${i}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n`;
  const line = `Line of message ${i}: the quick brown fox jumps over the lazy dog — grüße.\r\n`;
  let body = '';
  while (Buffer.byteLength(headers + body + line) <= 5 * 1024) body += line;
  return Buffer.from(headers + body, 'utf8');
}

const messages = Array.from({ length: count }, (_, i) => message(i));
const petrel = createSigner();
const key = {
  domain: 'example.com',
  selector: 'bench',
  algorithm: 'rsa-sha256',
  privateKey: parsePrivateKey(pem),
};

const headerData = Buffer.alloc(700, 'h');
const variants = {
  'floor: crypto.sign alone on 700 B, async': () =>
    new Promise((resolve, reject) =>
      cryptoSign('sha256', headerData, key.privateKey, (err, sig) => (err ? reject(err) : resolve(sig))),
    ),
  'petrel (cached KeyObject, async crypto.sign)': (msg) => petrel.sign(msg, [key]),
  'mailauth dkimSign (PEM per call)': async (msg) => {
    const result = await dkimSign(msg, {
      canonicalization: 'relaxed/relaxed',
      algorithm: 'rsa-sha256',
      signatureData: [{ signingDomain: 'example.com', selector: 'bench', privateKey: pem }],
    });
    if (result.errors.length > 0) throw result.errors[0];
    return result.signatures;
  },
};

async function run(sign) {
  let next = 0;
  const worker = async () => {
    while (next < messages.length) await sign(messages[next++]);
  };
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const { user, system } = process.cpuUsage(cpu);
  delay.disable();
  return {
    rate: messages.length / seconds,
    cpuMs: (user + system) / 1000 / messages.length,
    p99ms: delay.percentile(99) / 1e6,
  };
}

console.log(
  `node ${process.version}, ${availableParallelism()} CPUs, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}, ` +
    `${count} × ${messages[0].length} B messages, RSA-2048, concurrency ${concurrency}, ${rounds} rounds`,
);
for (const sign of Object.values(variants)) await sign(messages[0]);
for (let round = 1; round <= rounds; round++) {
  for (const [name, sign] of Object.entries(variants)) {
    const { rate, cpuMs, p99ms } = await run(sign);
    console.log(
      `round ${round}  ${name.padEnd(46)} ${rate.toFixed(0).padStart(6)} msg/s  ` +
        `CPU ${cpuMs.toFixed(2)} ms/msg  event-loop delay p99 ${p99ms.toFixed(1)} ms`,
    );
  }
}
