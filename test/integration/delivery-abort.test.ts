import { setTimeout as sleep } from 'node:timers/promises';
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
const SMALL = Buffer.from('Subject: x\r\n\r\nbody\r\n');
/** Large enough that the final dot cannot have been written when the sink sees DATA start. */
const LARGE = Buffer.concat([
  Buffer.from('Subject: big\r\n\r\n'),
  Buffer.alloc(16 * 1024 * 1024, 'abcdefgh\r\n'),
]);

const sinks: Sink[] = [];
const sessions: DeliverySession[] = [];

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  await Promise.all(sinks.splice(0).map((s) => s.close()));
});

async function setup(
  script: SinkScript,
  options: Partial<SessionOptions> = {},
): Promise<{ sink: Sink; session: DeliverySession }> {
  const sink = await startSink(script);
  sinks.push(sink);
  const host: MxHost = { name: 'mx.example.test', address: '127.0.0.1', port: sink.port, preference: 0 };
  const result = await openSession([host], { ...OPTIONS, ...options });
  if (!result.ok) throw new Error(JSON.stringify(result.outcome));
  sessions.push(result.session);
  return { sink, session: result.session };
}

describe('aborting delivery', () => {
  it('aborts a message before its final dot, so the server never accepts it', async () => {
    const controller = new AbortController();
    const { sink, session } = await setup({ dataStart: () => controller.abort() });
    const outcomes = await session.send(
      { mailFrom: 'a@petrel.test', rcptTo: ['x@example.test', 'y@example.test'], message: LARGE },
      { signal: controller.signal },
    );
    expect(outcomes.map((o) => [o.kind, o.reply.enhanced])).toEqual([
      ['deferred', '4.3.2'],
      ['deferred', '4.3.2'],
    ]);
    expect(session.usable).toBe(false);
    await sleep(200);
    expect(sink.messages).toHaveLength(0);
  });

  it('aborts an in-flight send and closes the session when the session signal fires (shutdown)', async () => {
    const controller = new AbortController();
    const { sink, session } = await setup(
      { dataStart: () => controller.abort() },
      { signal: controller.signal },
    );
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: LARGE,
    });
    expect(outcomes[0]).toMatchObject({ kind: 'deferred', reply: { enhanced: '4.3.2' } });
    expect(session.usable).toBe(false);
    const later = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: SMALL,
    });
    expect(later[0]).toMatchObject({ kind: 'deferred', reply: { enhanced: '4.3.2' } });
    await sleep(100);
    expect(sink.messages).toHaveLength(0);
  });

  it('does not connect at all with an already aborted signal', async () => {
    const sink = await startSink();
    sinks.push(sink);
    const host: MxHost = { name: 'mx.example.test', address: '127.0.0.1', port: sink.port, preference: 0 };
    const result = await openSession([host], { ...OPTIONS, signal: AbortSignal.abort() });
    expect(result).toMatchObject({ ok: false, outcome: { kind: 'deferred', reply: { enhanced: '4.3.2' } } });
    expect(sink.connections).toBe(0);
  });

  it('defers the recipients when the reply to the final dot does not come within the DATA timeout', async () => {
    const { session } = await setup(
      { data: () => 'hang' },
      { timeouts: { ...OPTIONS.timeouts, dataMs: 300 } },
    );
    const started = Date.now();
    const outcomes = await session.send({
      mailFrom: 'a@petrel.test',
      rcptTo: ['x@example.test'],
      message: SMALL,
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(outcomes[0]).toMatchObject({ kind: 'deferred', reply: { code: 451, enhanced: '4.4.2' } });
    expect(session.usable).toBe(false);
  });

  it('closes an idle session with QUIT', async () => {
    const { session } = await setup({});
    await session.close();
    expect(session.usable).toBe(false);
    await session.close();
  });
});
