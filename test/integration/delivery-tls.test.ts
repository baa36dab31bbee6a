import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  openSession,
  type DeliverySession,
  type MxHost,
  type OpenResult,
  type SessionOptions,
  type TlsPolicy,
} from '../../src/delivery/index.js';
import { makeTestPki, startSink, type Sink, type SinkScript, type TestPki } from '../helpers/sink.js';

const MX = 'mx.petrel.test';
const BASE: SessionOptions = {
  hostname: 'mta.petrel.test',
  tls: 'may',
  timeouts: { connectMs: 2_000, greetingMs: 2_000, commandMs: 3_000, dataMs: 5_000 },
};
const MESSAGE = Buffer.from('Subject: tls\r\n\r\nsecret\r\n');

let pki: TestPki;
const sinks: Sink[] = [];
const sessions: DeliverySession[] = [];

beforeAll(async () => {
  pki = await makeTestPki(MX);
});

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  await Promise.all(sinks.splice(0).map((s) => s.close()));
});

async function attempt(
  script: SinkScript,
  tls: TlsPolicy,
  extra: Partial<SessionOptions> = {},
  name = MX,
): Promise<{ sink: Sink; result: OpenResult }> {
  const sink = await startSink(script);
  sinks.push(sink);
  const host: MxHost = { name, address: '127.0.0.1', port: sink.port, preference: 0 };
  const result = await openSession([host], { ...BASE, ...extra, tls });
  if (result.ok) sessions.push(result.session);
  return { sink, result };
}

async function deliversOver(result: OpenResult, sink: Sink, secure: boolean): Promise<void> {
  if (!result.ok) throw new Error(`open failed: ${JSON.stringify(result.outcome)}`);
  expect(result.session.secure).toBe(secure);
  const outcomes = await result.session.send({
    mailFrom: 'a@petrel.test',
    rcptTo: ['x@example.test'],
    message: MESSAGE,
  });
  expect(outcomes[0]!.kind).toBe('delivered');
  const [received] = await sink.waitForMessages(1);
  expect(received!.secure).toBe(secure);
  expect(received!.body.equals(MESSAGE)).toBe(true);
}

describe('TLS policy may', () => {
  it('uses STARTTLS when offered, whatever the certificate', async () => {
    const { sink, result } = await attempt({}, 'may');
    await deliversOver(result, sink, true);
  });

  it('sends in plaintext when STARTTLS is not offered', async () => {
    const { sink, result } = await attempt({ starttls: false }, 'may');
    await deliversOver(result, sink, false);
  });

  it('reconnects in plaintext when the TLS handshake fails', async () => {
    const { sink, result } = await attempt({ brokenTls: true }, 'may');
    await deliversOver(result, sink, false);
    expect(sink.connections).toBe(2);
  });
});

describe('TLS policy encrypt', () => {
  it('accepts a self-signed certificate', async () => {
    const { sink, result } = await attempt({}, 'encrypt');
    await deliversOver(result, sink, true);
  });

  it('defers with 4.7.4 when STARTTLS is not offered, and sends nothing', async () => {
    const { sink, result } = await attempt({ starttls: false }, 'encrypt');
    expect(result).toMatchObject({
      ok: false,
      outcome: { kind: 'deferred', reply: { code: 421, enhanced: '4.7.4' }, mx: MX },
    });
    expect(sink.plaintextTranscript()).not.toContain('MAIL FROM');
  });

  it('defers with 4.7.5 when the handshake fails, without falling back to plaintext', async () => {
    const { sink, result } = await attempt({ brokenTls: true }, 'encrypt');
    expect(result).toMatchObject({ ok: false, outcome: { kind: 'deferred', reply: { enhanced: '4.7.5' } } });
    expect(sink.connections).toBe(1);
  });
});

describe('TLS policy verify', () => {
  it('accepts a certificate valid for the MX name from a trusted CA', async () => {
    const { sink, result } = await attempt({ tls: { key: pki.key, cert: pki.cert } }, 'verify', {
      trustedCa: pki.ca,
    });
    await deliversOver(result, sink, true);
  });

  it('defers with 4.7.5 for a self-signed certificate', async () => {
    const { result } = await attempt({}, 'verify');
    expect(result).toMatchObject({ ok: false, outcome: { kind: 'deferred', reply: { enhanced: '4.7.5' } } });
  });

  it('defers with 4.7.5 when the certificate is for another name', async () => {
    const { result } = await attempt(
      { tls: { key: pki.key, cert: pki.cert } },
      'verify',
      { trustedCa: pki.ca },
      'mx.other.test',
    );
    expect(result).toMatchObject({ ok: false, outcome: { kind: 'deferred', reply: { enhanced: '4.7.5' } } });
    if (!result.ok) expect(result.outcome.reply.text).toMatch(/mx\.other\.test/);
  });

  it('moves on to the next MX when the first fails verification', async () => {
    const bad = await startSink();
    const good = await startSink({ tls: { key: pki.key, cert: pki.cert } });
    sinks.push(bad, good);
    const result = await openSession(
      [
        { name: MX, address: '127.0.0.1', port: bad.port, preference: 10 },
        { name: MX, address: '127.0.0.1', port: good.port, preference: 20 },
      ],
      { ...BASE, tls: 'verify', trustedCa: pki.ca },
    );
    if (result.ok) sessions.push(result.session);
    expect(result.ok && result.session.port).toBe(good.port);
  });
});
