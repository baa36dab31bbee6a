import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  openSession,
  type DeliverySession,
  type MxHost,
  type SessionOptions,
} from '../../src/delivery/index.js';
import { startSink, type Sink, type SinkScript } from '../helpers/sink.js';

const OPTIONS: SessionOptions = {
  hostname: 'mta.petrel.test',
  tls: 'may',
  timeouts: { connectMs: 2_000, greetingMs: 2_000, commandMs: 3_000, dataMs: 5_000 },
};

const MESSAGE = Buffer.from(
  'From: sender@petrel.test\r\nTo: list@example.test\r\nSubject: hello\r\n\r\n' +
    'line one\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast line without trailing space \r\n',
);

const sinks: Sink[] = [];
const sessions: DeliverySession[] = [];

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  await Promise.all(sinks.splice(0).map((s) => s.close()));
});

async function sink(script: SinkScript = {}): Promise<Sink> {
  const s = await startSink(script);
  sinks.push(s);
  return s;
}

function hostOf(s: { port: number }, name = 'mx.example.test'): MxHost {
  return { name, address: '127.0.0.1', port: s.port, preference: 10 };
}

async function open(hosts: MxHost[], options: Partial<SessionOptions> = {}): Promise<DeliverySession> {
  const result = await openSession(hosts, { ...OPTIONS, ...options });
  if (!result.ok) throw new Error(`open failed: ${JSON.stringify(result.outcome)}`);
  sessions.push(result.session);
  return result.session;
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('delivery session', () => {
  it('records each recipient’s own RCPT reply: 250/450/550 become delivered/deferred/failed', async () => {
    const s = await sink({
      rcpt: (a) =>
        a.startsWith('busy')
          ? { code: 450, text: '4.2.1 Mailbox busy, try later' }
          : a.startsWith('gone')
            ? { code: 550, text: '5.1.1 No such user here' }
            : undefined,
      data: () => ({ code: 250, text: '2.0.0 Ok: queued as ABC123' }),
    });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'bounce+1@bounces.petrel.test',
      rcptTo: ['ok@example.test', 'busy@example.test', 'gone@example.test'],
      message: MESSAGE,
    });
    expect(outcomes).toEqual([
      {
        kind: 'delivered',
        reply: { code: 250, enhanced: '2.0.0', text: 'Ok: queued as ABC123' },
        mx: 'mx.example.test',
      },
      {
        kind: 'deferred',
        reply: { code: 450, enhanced: '4.2.1', text: 'Mailbox busy, try later' },
        mx: 'mx.example.test',
      },
      {
        kind: 'failed',
        reply: { code: 550, enhanced: '5.1.1', text: 'No such user here' },
        mx: 'mx.example.test',
      },
    ]);
    const [received] = await s.waitForMessages(1);
    expect(received!.rcptTo).toEqual(['ok@example.test']);
    expect(received!.mailFrom).toBe('bounce+1@bounces.petrel.test');
    expect(received!.ehloName).toBe('mta.petrel.test');
  });

  it('delivers the message bytes exactly as given, dot-leading lines and 8-bit content included', async () => {
    const s = await sink();
    const session = await open([hostOf(s)]);
    const body = Buffer.concat([
      MESSAGE,
      Buffer.from('Grüße, ½ € \r\n'),
      Buffer.from([0xff, 0xfe, 0x0d, 0x0a]),
    ]);
    const [outcome] = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['b@example.test'],
      message: body,
    });
    expect(outcome!.kind).toBe('delivered');
    const [received] = await s.waitForMessages(1);
    expect(received!.body.equals(body)).toBe(true);
  });

  it('sends several messages over one connection', async () => {
    const s = await sink();
    const session = await open([hostOf(s)]);
    for (let i = 0; i < 5; i++) {
      const message = Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);
      const outcomes = await session.send({
        mailFrom: `s${i}@petrel.test`,
        rcptTo: [`r${i}@example.test`],
        message,
      });
      expect(outcomes.map((o) => o.kind)).toEqual(['delivered']);
    }
    expect(session.messagesSent).toBe(5);
    expect(session.usable).toBe(true);
    const received = await s.waitForMessages(5);
    expect(received.map((m) => m.body.toString())).toEqual(
      [0, 1, 2, 3, 4].map((i) => `Subject: ${i}\r\n\r\nbody ${i}\r\n`),
    );
    expect(s.connections).toBe(1);
  });

  it('serializes concurrent sends on one session', async () => {
    const s = await sink();
    const session = await open([hostOf(s)]);
    const results = await Promise.all(
      [1, 2, 3].map((i) =>
        session.send({
          mailFrom: 'a@petrel.test',
          rcptTo: [`r${i}@example.test`],
          message: Buffer.from(`X: ${i}\r\n\r\n.\r\n`),
        }),
      ),
    );
    expect(results.flat().map((o) => o.kind)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(s.connections).toBe(1);
  });

  it('applies a 4xx or 5xx reply after DATA to every accepted recipient, and keeps the session usable', async () => {
    let n = 0;
    const s = await sink({
      data: () => {
        n += 1;
        if (n === 1) return { code: 451, text: '4.3.0 Try again later' };
        if (n === 2) return { code: 554, text: '5.7.1 Spam detected' };
        return undefined;
      },
    });
    const session = await open([hostOf(s)]);
    const first = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test', 'y@example.test'],
      message: MESSAGE,
    });
    expect(first.map((o) => [o.kind, o.reply.code, o.reply.enhanced])).toEqual([
      ['deferred', 451, '4.3.0'],
      ['deferred', 451, '4.3.0'],
    ]);
    const second = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['z@example.test'],
      message: MESSAGE,
    });
    expect(second).toEqual([
      {
        kind: 'failed',
        reply: { code: 554, enhanced: '5.7.1', text: 'Spam detected' },
        mx: 'mx.example.test',
      },
    ]);
    expect(session.usable).toBe(true);
    const third = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['w@example.test'],
      message: MESSAGE,
    });
    expect(third[0]!.kind).toBe('delivered');
    expect(s.connections).toBe(1);
  });

  it('defers every recipient when the server disconnects before its reply to DATA', async () => {
    const s = await sink({
      rcpt: (a) => (a.startsWith('gone') ? { code: 550, text: '5.1.1 unknown' } : undefined),
      data: () => 'disconnect',
    });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test', 'gone@example.test', 'y@example.test'],
      message: MESSAGE,
    });
    expect(outcomes.map((o) => o.kind)).toEqual(['deferred', 'failed', 'deferred']);
    expect(outcomes[0]!.reply).toMatchObject({ code: 451, enhanced: '4.4.2' });
    expect(session.usable).toBe(false);
    const after = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(after[0]).toMatchObject({ kind: 'deferred', reply: { enhanced: '4.4.2' } });
  });

  it('gives every recipient the reply to a refused MAIL FROM', async () => {
    const s = await sink({ mail: () => ({ code: 553, text: '5.1.8 Sender domain rejected' }) });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'a@bad.test',
      rcptTo: ['x@example.test', 'y@example.test'],
      message: MESSAGE,
    });
    expect(outcomes.map((o) => [o.kind, o.reply.code, o.reply.enhanced])).toEqual([
      ['failed', 553, '5.1.8'],
      ['failed', 553, '5.1.8'],
    ]);
    expect(s.messages).toHaveLength(0);
  });

  it('works without PIPELINING and with the null reverse path', async () => {
    const s = await sink({
      hidePIPELINING: true,
      rcpt: (a) => (a.startsWith('gone') ? { code: 550, text: '5.1.1 unknown' } : undefined),
    });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: '',
      rcptTo: ['gone@example.test', 'x@example.test'],
      message: MESSAGE,
    });
    expect(outcomes.map((o) => o.kind)).toEqual(['failed', 'delivered']);
    const [received] = await s.waitForMessages(1);
    expect(received!.mailFrom).toBe('');
  });

  it('reports each recipient’s own reply when every RCPT is refused', async () => {
    const s = await sink({
      rcpt: (a) =>
        a.startsWith('full') ? { code: 452, text: '4.2.2 Over quota' } : { code: 550, text: '5.1.1 unknown' },
    });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['full@example.test', 'gone@example.test'],
      message: MESSAGE,
    });
    expect(outcomes.map((o) => [o.kind, o.reply.enhanced])).toEqual([
      ['deferred', '4.2.2'],
      ['failed', '5.1.1'],
    ]);
    expect(session.usable).toBe(true);
  });

  it('downgrades an 8-bit message to 7 bits for a server without 8BITMIME and sends the re-signed form', async () => {
    const s = await sink({ hide8BITMIME: true, starttls: false });
    const given: Buffer[] = [];
    const session = await open([hostOf(s)], {
      resign: async (message) => {
        given.push(message);
        return Buffer.concat([Buffer.from('X-Resigned: yes\r\n'), message]);
      },
    });
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: Buffer.from('Subject: é\r\n\r\né\r\n'),
    });
    expect(outcomes[0]!.kind).toBe('delivered');
    const [received] = await s.waitForMessages(1);
    expect(given).toHaveLength(1);
    expect(received!.body.equals(Buffer.concat([Buffer.from('X-Resigned: yes\r\n'), given[0]!]))).toBe(true);
    expect(received!.body.toString('latin1')).toBe(
      'X-Resigned: yes\r\nSubject:\r\n =?UTF-8?B?w6k=?=\r\nMIME-Version: 1.0\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9\r\n',
    );
    // Without 8BITMIME the transaction must not claim BODY=8BITMIME either.
    expect(s.plaintextTranscript()).toContain('MAIL FROM:<a@petrel.test>');
    expect(s.plaintextTranscript()).not.toContain('BODY=8BITMIME');
  });

  it('fails an 8-bit message it cannot downgrade with 5.6.3, without sending it', async () => {
    const s = await sink({ hide8BITMIME: true });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: Buffer.from('From: Jörg <a@petrel.test>\r\n\r\né\r\n'),
    });
    expect(outcomes[0]).toMatchObject({ kind: 'failed', reply: { code: 554, enhanced: '5.6.3' } });
    expect(s.messages).toHaveLength(0);
    const ascii = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(ascii[0]!.kind).toBe('delivered');
  });

  it('defers a downgraded message whose re-signing fails, rather than send broken signatures', async () => {
    const s = await sink({ hide8BITMIME: true });
    const session = await open([hostOf(s)], {
      resign: () => Promise.reject(new Error('key file unreadable')),
    });
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: Buffer.from('Subject: hi\r\n\r\né\r\n'),
    });
    expect(outcomes[0]).toMatchObject({ kind: 'deferred', reply: { code: 451, enhanced: '4.3.0' } });
    expect(s.messages).toHaveLength(0);
  });

  it('fails a non-ASCII local part with 5.6.7 without SMTPUTF8 and sends IDN domains as A-labels', async () => {
    const s = await sink({ hideSMTPUTF8: true, starttls: false });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['用户@例子.广告', 'info@bücher.example'],
      message: MESSAGE,
    });
    expect(outcomes.map((o) => [o.kind, o.reply.enhanced])).toEqual([
      ['failed', '5.6.7'],
      ['delivered', '2.0.0'],
    ]);
    const [received] = await s.waitForMessages(1);
    expect(received!.rcptTo).toEqual(['info@bücher.example']);
    expect(s.plaintextTranscript()).toContain('RCPT TO:<info@xn--bcher-kva.example>');
    const sender = await session.send({
      mailFrom: 'экспедитор@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(sender[0]).toMatchObject({ kind: 'failed', reply: { enhanced: '5.6.7' } });
    // RELIABILITY #41: never raw UTF-8 on the wire to a server without SMTPUTF8.
    expect(s.plaintextTranscript()).not.toMatch(/[\u0080-\uffff]/);
  });

  it('sends UTF-8 addresses to a server that supports SMTPUTF8', async () => {
    const s = await sink();
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['用户@例子.广告'],
      message: MESSAGE,
    });
    expect(outcomes[0]!.kind).toBe('delivered');
    expect((await s.waitForMessages(1))[0]!.rcptTo).toEqual(['用户@例子.广告']);
  });

  it('fails a message over the advertised SIZE with 5.3.4 without sending it', async () => {
    const s = await sink({ size: 100 });
    const session = await open([hostOf(s)]);
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: Buffer.alloc(200, 'a'),
    });
    expect(outcomes[0]).toMatchObject({ kind: 'failed', reply: { code: 552, enhanced: '5.3.4' } });
  });

  it('sanitizes reply texts', async () => {
    const s = await sink({ rcpt: () => ({ code: 550, text: `5.7.1 ${'blah '.repeat(200)}\u0001` }) });
    const session = await open([hostOf(s)]);
    const [outcome] = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(outcome!.reply.text.length).toBeLessThanOrEqual(512);
    // eslint-disable-next-line no-control-regex
    expect(outcome!.reply.text).not.toMatch(/[\u0000-\u001f]/);
  });
});

describe('opening a session', () => {
  it('moves to the next MX when the first refuses the connection', async () => {
    const s = await sink();
    const refused: MxHost = {
      name: 'mx1.example.test',
      address: '127.0.0.1',
      port: await closedPort(),
      preference: 10,
    };
    const session = await open([refused, hostOf(s, 'mx2.example.test')]);
    expect(session.mx).toBe('mx2.example.test');
    const [outcome] = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: MESSAGE,
    });
    expect(outcome).toMatchObject({ kind: 'delivered', mx: 'mx2.example.test' });
  });

  it('moves to the next MX when the first answers the connection with 421', async () => {
    const busy = await sink({ greeting: { code: 421, text: '4.7.0 Too busy' } });
    const s = await sink();
    const session = await open([hostOf(busy, 'mx1.example.test'), hostOf(s, 'mx2.example.test')]);
    expect(session.mx).toBe('mx2.example.test');
  });

  it('defers with 4.4.1 when no host accepts the connection', async () => {
    const hosts: MxHost[] = [
      { name: 'mx1.example.test', address: '127.0.0.1', port: await closedPort(), preference: 10 },
      { name: 'mx2.example.test', address: '127.0.0.1', port: await closedPort(), preference: 20 },
    ];
    const result = await openSession(hosts, OPTIONS);
    expect(result).toMatchObject({
      ok: false,
      outcome: { kind: 'deferred', reply: { code: 421, enhanced: '4.4.1' }, mx: 'mx2.example.test' },
    });
  });

  it('fails when the only host answers the connection with 554', async () => {
    const s = await sink({ greeting: { code: 554, text: '5.7.1 No SMTP service here' } });
    const result = await openSession([hostOf(s)], OPTIONS);
    expect(result).toMatchObject({
      ok: false,
      outcome: { kind: 'failed', reply: { code: 554, enhanced: '5.7.1' } },
    });
  });

  it('times out a server that never sends its banner', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const result = await openSession([hostOf(silent.address() as AddressInfo)], {
        ...OPTIONS,
        timeouts: { connectMs: 200, greetingMs: 300 },
      });
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(result).toMatchObject({
        ok: false,
        outcome: { kind: 'deferred', reply: { enhanced: '4.4.1' } },
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
