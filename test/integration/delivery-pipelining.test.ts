import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  openSession,
  type DeliverySession,
  type MxHost,
  type SessionOptions,
} from '../../src/delivery/index.js';
import { interopTool, startTracedSmtpSink, type SinkIo, type TracedSmtpSink } from '../helpers/interop.js';
import { until } from '../helpers/until.js';

const OPTIONS: SessionOptions = {
  hostname: 'mta.petrel.test',
  tls: 'may',
  timeouts: { connectMs: 2_000, greetingMs: 2_000, commandMs: 3_000, dataMs: 5_000 },
};
const MESSAGE = Buffer.from('Subject: pipelined\r\n\r\n.dot first\r\nbody\r\n');
const STUFFED = 'Subject: pipelined\r\n\r\n..dot first\r\nbody\r\n.\r\n';

const sessions: DeliverySession[] = [];
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  await Promise.all(stops.splice(0).map((stop) => stop()));
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function open(port: number, options: Partial<SessionOptions> = {}): Promise<DeliverySession> {
  const host: MxHost = { name: 'mx.example.test', address: '127.0.0.1', port, preference: 0 };
  const result = await openSession([host], { ...OPTIONS, ...options });
  if (!result.ok) throw new Error(`open failed: ${JSON.stringify(result.outcome)}`);
  sessions.push(result.session);
  return result.session;
}

const strace = interopTool('/usr/bin/strace', 'strace');
const sinkTool = interopTool('/usr/sbin/smtp-sink', 'postfix');
const traced = strace.available && sinkTool.available;

async function tracedSink(args: string[]): Promise<TracedSmtpSink> {
  for (let attempt = 1; ; attempt++) {
    try {
      const sink = await startTracedSmtpSink(await freePort(), args);
      stops.push(() => sink.stop());
      return sink;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

/** Sends one message to two recipients and returns what smtp-sink read and wrote, from MAIL on. */
async function transcriptOfOneMessage(sink: TracedSmtpSink): Promise<SinkIo[]> {
  const session = await open(sink.port);
  const outcomes = await session.send({
    mailFrom: 'a@petrel.test',
    rcptTo: ['x@example.test', 'y@example.test'],
    message: MESSAGE,
  });
  expect(outcomes.map((o) => o.kind)).toEqual(['delivered', 'delivered']);
  await session.close();
  await until(() => sink.io().some((e) => e.op === 'read' && e.data.includes('QUIT')));
  const io = sink.io();
  return io.slice(io.findIndex((e) => e.op === 'read' && e.data.startsWith('MAIL FROM:')));
}

describe.skipIf(!traced)(
  `command groups on the wire, as smtp-sink read them${traced ? '' : `: ${strace.reason}, ${sinkTool.reason}`}`,
  () => {
    it('pipelines MAIL, RCPT and DATA where the server offers PIPELINING', async () => {
      const sink = await tracedSink([]);
      const io = await transcriptOfOneMessage(sink);
      const reads = io.filter((e) => e.op === 'read').map((e) => e.data);
      // One read() of the server holds the whole group, DATA last (RFC 2920 §3.1) ...
      expect(reads[0]).toBe(
        'MAIL FROM:<a@petrel.test>\r\nRCPT TO:<x@example.test>\r\nRCPT TO:<y@example.test>\r\nDATA\r\n',
      );
      // ... and the next one the dot-stuffed message with its final dot.
      expect(reads[1]).toBe(STUFFED);
      expect(reads[2]).toBe('QUIT\r\n');
    });

    it('waits for each reply where the server does not offer PIPELINING', async () => {
      const sink = await tracedSink(['-p']);
      const io = await transcriptOfOneMessage(sink);
      const upToBody = io.slice(0, 8).map((e) => [e.op, e.data.slice(0, 12)]);
      // Each command is read alone, and the server has answered it before the next arrives.
      expect(upToBody).toEqual([
        ['read', 'MAIL FROM:<a'],
        ['write', '250 2.1.0 Ok'],
        ['read', 'RCPT TO:<x@e'],
        ['write', '250 2.1.5 Ok'],
        ['read', 'RCPT TO:<y@e'],
        ['write', '250 2.1.5 Ok'],
        ['read', 'DATA\r\n'],
        ['write', '354 End data'],
      ]);
      expect(io[0]!.data).toBe('MAIL FROM:<a@petrel.test>\r\n');
      expect(io.find((e, i) => i > 7 && e.op === 'read')!.data).toBe(STUFFED);
    });
  },
);

type Answer = (command: string) => string | null;

/**
 * A scripted server on loopback: `answer` gets each command line and returns the reply to
 * send ("" for none); after a 354 it collects the message up to the final dot and answers that
 * with `answer('.')`. Records every line it read.
 */
async function scripted(ehlo: string[], answer: Answer): Promise<{ port: number; lines: string[] }> {
  const lines: string[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    let buffer = '';
    let inData = false;
    socket.write('220 scripted ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buffer.startsWith('.\r\n') ? 0 : buffer.indexOf('\r\n.\r\n');
          if (end === -1) return;
          buffer = buffer.slice(end === 0 ? 3 : end + 5);
          inData = false;
          lines.push('.');
          socket.write(`${answer('.') ?? '250 ok'}\r\n`);
          continue;
        }
        const lf = buffer.indexOf('\r\n');
        if (lf === -1) return;
        const line = buffer.slice(0, lf);
        buffer = buffer.slice(lf + 2);
        lines.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        let reply: string | null;
        if (verb === 'EHLO') reply = ['250-scripted', ...ehlo.map((e) => `250-${e}`), '250 OK'].join('\r\n');
        else if (verb === 'QUIT') reply = '221 bye';
        else reply = answer(line) ?? '250 ok';
        if (reply !== '') socket.write(`${reply}\r\n`);
        if (reply.startsWith('354')) inData = true;
        if (verb === 'QUIT') socket.end();
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  stops.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as AddressInfo).port, lines };
}

describe('pipelining against misbehaving servers', () => {
  it('ends the empty message with a lone dot when a server takes DATA though it refused every RCPT', async () => {
    let refusing = true;
    const s = await scripted(['PIPELINING'], (line) => {
      if (line.startsWith('RCPT') && refusing) return '550 5.1.1 no such user';
      if (line === 'DATA') return '354 go ahead';
      return null;
    });
    const session = await open(s.port);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test', 'y@example.test'],
      message: MESSAGE,
    });
    expect(outcomes.map((o) => [o.kind, o.reply.code, o.reply.enhanced])).toEqual([
      ['failed', 550, '5.1.1'],
      ['failed', 550, '5.1.1'],
    ]);
    // The dot ends DATA mode without a message line; RSET then starts the next one clean.
    expect(s.lines.slice(-2)).toEqual(['.', 'RSET']);
    expect(session.usable).toBe(true);
    refusing = false;
    const next = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(next[0]!.kind).toBe('delivered');
  });

  it('drops a server whose reply line never ends, without buffering it, and defers', async () => {
    const s = await scripted(['PIPELINING'], (line) =>
      line.startsWith('MAIL') ? `250 ${'x'.repeat(1 << 20)}` : null,
    );
    const session = await open(s.port);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(outcomes[0]).toMatchObject({ kind: 'deferred', reply: { code: 451, enhanced: '4.4.2' } });
    expect(outcomes[0]!.reply.text).toMatch(/too long/);
    expect(session.usable).toBe(false);
  });

  it('gives the 421 a server closes with to every recipient it had not refused', async () => {
    const s = await scripted(['PIPELINING'], (line) => {
      if (line.startsWith('RCPT TO:<gone')) return '550 5.1.1 unknown';
      if (line.startsWith('RCPT TO:<y')) return '421 4.3.2 shutting down';
      return null;
    });
    const session = await open(s.port);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test', 'gone@example.test', 'y@example.test', 'z@example.test'],
      message: MESSAGE,
    });
    expect(outcomes.map((o) => [o.kind, o.reply.code])).toEqual([
      ['deferred', 421],
      ['failed', 550],
      ['deferred', 421],
      ['deferred', 451],
    ]);
    expect(session.usable).toBe(false);
    expect(s.lines).not.toContain('.');
  });

  it('authenticates with AUTH LOGIN where the server offers only that', async () => {
    const b64 = (t: string): string => Buffer.from(t).toString('base64');
    const s = await scripted(['AUTH LOGIN'], (line) => {
      if (line === 'AUTH LOGIN') return '334 VXNlcm5hbWU6';
      if (line === b64('relay')) return '334 UGFzc3dvcmQ6';
      if (line === b64('secret')) return '235 2.7.0 ok';
      return null;
    });
    const session = await open(s.port, { auth: { user: 'relay', pass: 'secret' } });
    const [outcome] = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(outcome!.kind).toBe('delivered');
    expect(s.lines.slice(1, 4)).toEqual(['AUTH LOGIN', b64('relay'), b64('secret')]);
  });

  it('drops a server that sends a reply nobody asked for', async () => {
    const s = await scripted(['PIPELINING'], (line) =>
      line.startsWith('MAIL') ? '250 ok\r\n250 and again' : null,
    );
    const session = await open(s.port);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(outcomes[0]).toMatchObject({ kind: 'deferred', reply: { code: 451, enhanced: '4.4.2' } });
    expect(session.usable).toBe(false);
    expect(s.lines).not.toContain('.');
  });

  it('gives up on a server that sends plaintext after its 220 to STARTTLS, before any TLS', async () => {
    const s = await scripted(['STARTTLS'], (line) =>
      line === 'STARTTLS' ? '220 go ahead\r\n250 injected' : null,
    );
    const host: MxHost = { name: 'mx.example.test', address: '127.0.0.1', port: s.port, preference: 0 };
    const result = await openSession([host], OPTIONS);
    expect(result).toMatchObject({ ok: false, outcome: { kind: 'deferred', reply: { code: 421 } } });
    expect(s.lines).toEqual(['EHLO mta.petrel.test', 'STARTTLS']);
  });
});
