#!/usr/bin/env node
// CPU per message of the outbound session: N small messages over one persistent session to
// Postfix's smtp-sink, measured with process.cpuUsage (the sink's CPU is its own process).
// Usage: [ROUNDS=3] [BODY_KB=0.3] node test/bench/session-cpu.mjs [messages] [dist dir ...]   (default: ./dist)
// Give several dist dirs (e.g. a checkout of another commit) to compare clients in one run.
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const messages = Number(process.argv[2] ?? 5000);
const dists = process.argv.slice(3).length > 0 ? process.argv.slice(3) : ['dist'];
const ROUNDS = Number(process.env.ROUNDS ?? 3);

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

const port = await freePort();
const sink = spawn('/usr/sbin/smtp-sink', ['-u', 'nobody', `127.0.0.1:${port}`, '64'], { stdio: 'ignore' });
for (let i = 0; ; i++) {
  const up = await new Promise((r) => {
    const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
    s.on('error', () => r(false));
  });
  if (up) break;
  if (i > 100) throw new Error('smtp-sink did not start');
  await new Promise((r) => setTimeout(r, 50));
}

// One dot-led line, as a real message has a few; BODY_KB pads it with plain 78-byte lines.
const filler = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
const body = Buffer.from(
  'From: sender@petrel.test\r\nTo: r@example.test\r\nSubject: bench\r\nMessage-ID: <b@petrel.test>\r\n\r\n' +
    'A small message.\r\n.A line with a leading dot.\r\n' +
    filler.repeat(Math.max(1, Math.round((Number(process.env.BODY_KB ?? 0.3) * 1024) / filler.length))),
);

async function run(dist) {
  const { openSession } = await import(pathToFileURL(resolve(dist, 'delivery/index.js')).href);
  const opened = await openSession([{ name: 'sink.test', address: '127.0.0.1', port, preference: 0 }], {
    hostname: 'bench.petrel.test',
    tls: 'may',
  });
  if (!opened.ok) throw new Error(JSON.stringify(opened.outcome));
  const session = opened.session;
  const send = async (n) => {
    for (let i = 0; i < n; i++) {
      const [o] = await session.send({
        mailFrom: 'b@petrel.test',
        rcptTo: ['r@example.test'],
        message: body,
      });
      if (o.kind !== 'delivered') throw new Error(JSON.stringify(o));
    }
  };
  await send(500);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await send(messages);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  await session.close();
  return { cpuUsPerMsg: (cpu.user + cpu.system) / messages, wallMsPerMsg: wallMs / messages };
}

const results = new Map(dists.map((d) => [d, []]));
for (let r = 0; r < ROUNDS; r++) for (const d of dists) results.get(d).push(await run(d));
sink.kill('SIGTERM');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [d, rs] of results) {
  const cpu = median(rs.map((r) => r.cpuUsPerMsg));
  const wall = median(rs.map((r) => r.wallMsPerMsg));
  console.log(
    `${d}: ${messages} messages x ${ROUNDS} rounds, median CPU ${(cpu / 1000).toFixed(3)} ms/message, ` +
      `wall ${wall.toFixed(3)} ms/message (rounds: ${rs.map((r) => (r.cpuUsPerMsg / 1000).toFixed(3)).join(', ')})`,
  );
}
