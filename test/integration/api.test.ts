import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, cli } from '../helpers/daemon.js';
import { keygen, publishedRecords, verifyWithBoth } from '../helpers/dkim-check.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import { until } from '../helpers/until.js';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
}

/** One request with Node's own HTTP client; `localAddress` picks the client address on loopback. */
function call(
  port: number,
  path: string,
  opts: {
    method?: string;
    token?: string;
    json?: unknown;
    raw?: string;
    type?: string;
    localAddress?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<Answer> {
  const payload = opts.raw ?? (opts.json === undefined ? undefined : JSON.stringify(opts.json));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(payload !== undefined ? { 'content-type': opts.type ?? 'application/json' } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const subjects = (r: Routed): string[] =>
  r.sink.messages.map((m) => /^Subject: (.*)\r$/m.exec(m.body.toString())?.[1] ?? '');

function keyFor(r: Routed, args: string[]): string {
  const out = cli(r.t, ['--json', 'key', 'add', ...args]);
  if (out.status !== 0) throw new Error(`key add failed: ${out.stderr}`);
  return (JSON.parse(out.stdout) as { token: string }).token;
}

describe('HTTP API: sending', () => {
  let r: Routed;
  let port: number;
  let send: string;
  let read: string;
  let other: string;

  beforeAll(async () => {
    r = await startRoutedDaemon({
      prepare: async (t) => {
        await keygen(t, 'example.com', 'api');
        addUser(t, 'other', ['other.example'], 'pw2');
      },
    });
    port = r.daemon.ports.http!;
    send = keyFor(r, ['app', '--scope', 'send,read']);
    read = keyFor(r, ['app', '--scope', 'read']);
    other = keyFor(r, ['other', '--scope', 'send,read']);
  });
  afterAll(async () => {
    await r?.stop();
  });

  it('queues a composed message, answers 202 after the spool commit, and it arrives DKIM-signed', async () => {
    const a = await call(port, '/api/v1/messages', {
      token: send,
      json: {
        from: 'Shop <sender@example.com>',
        to: ['ann@dest.test'],
        cc: 'cy@dest.test',
        bcc: ['hidden@dest.test'],
        subject: 'Your order',
        text: 'Thanks for your order.',
        html: '<p>Thanks for your order.</p>',
        headers: { 'X-Order': '1234' },
      },
    });
    expect(a.status, JSON.stringify(a.body)).toBe(202);
    expect(a.headers['content-type']).toBe('application/json');
    const id = a.body['id'] as string;
    expect(a.body['recipients']).toEqual([
      { address: 'ann@dest.test', status: 'queued' },
      { address: 'cy@dest.test', status: 'queued' },
      { address: 'hidden@dest.test', status: 'queued' },
    ]);
    // VERP: a transaction per recipient, each with its own return path.
    const all = await r.sink.waitForMessages(3, 15_000);
    expect(all.flatMap((x) => x.rcptTo).sort()).toEqual([
      'ann@dest.test',
      'cy@dest.test',
      'hidden@dest.test',
    ]);
    const m = all.find((x) => x.rcptTo.includes('ann@dest.test'));
    expect(m!.mailFrom).toMatch(/^b-.+@bounces\.localhost$/);
    const text = m!.body.toString();
    expect(text).toMatch(/^Subject: Your order\r$/m);
    expect(text).toMatch(/^X-Order: 1234\r$/m);
    expect(text).not.toMatch(/^Bcc:/im);
    expect(text).not.toContain('hidden@dest.test');
    expect(text).toMatch(/^Received: from \[127\.0\.0\.1\]\r\n\tby .* \(Petrel\) with HTTP id /m);
    const verdicts = await verifyWithBoth(m!.body, await publishedRecords(r.t, 'example.com'));
    expect(verdicts).toEqual({ mailauth: ['pass'], dkimpy: [true] });
    // Its state and delivery log, for its own account only.
    await until('delivered', async () => {
      const doc = await call(port, `/api/v1/messages/${id}`, { token: read });
      return (doc.body['recipients'] as { state: string }[]).every((x) => x.state === 'delivered');
    });
    const theirs = await call(port, `/api/v1/messages/${id}`, { token: other });
    expect(theirs.status).toBe(404);
    expect(theirs.headers['content-type']).toBe('application/problem+json');
  }, 60_000);

  it('queues a raw message with its envelope', async () => {
    const before = r.sink.messages.length;
    const a = await call(port, '/api/v1/messages', {
      token: send,
      json: {
        envelope: { from: 'bounces@example.com', to: ['raw@dest.test'] },
        raw: 'From: sender@example.com\nTo: raw@dest.test\nSubject: raw one\n\nhello\n',
      },
    });
    expect(a.status, JSON.stringify(a.body)).toBe(202);
    await until('the raw message', () => r.sink.messages.length > before, 15_000);
    const m = r.sink.messages[before]!;
    expect(m.rcptTo).toEqual(['raw@dest.test']);
    expect(m.mailFrom).toMatch(/^b-.+@bounces\.localhost$/);
    expect(m.body.toString()).toMatch(/^Subject: raw one\r\n/m);
  }, 30_000);

  it('sends once for calls retried with one Idempotency-Key, and refuses the key with another body', async () => {
    const json = { from: 'sender@example.com', to: 'once@dest.test', subject: 'idem once', text: 't' };
    const headers = { 'idempotency-key': 'order-77-confirmation' };
    // Two at the same moment: one sends, the other is told it is under way or given the same answer.
    const [a, b] = await Promise.all([
      call(port, '/api/v1/messages', { token: send, json, headers }),
      call(port, '/api/v1/messages', { token: send, json, headers }),
    ]);
    const sent = [a, b].filter((x) => x.status === 202);
    expect(sent.length).toBeGreaterThan(0);
    expect([a, b].every((x) => x.status === 202 || x.status === 409)).toBe(true);
    expect(new Set(sent.map((x) => x.body['id'])).size).toBe(1);
    const id = sent[0]!.body['id'];
    const replay = await call(port, '/api/v1/messages', { token: send, json, headers });
    expect(replay.status).toBe(202);
    expect(replay.body['id']).toBe(id);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    const changed = await call(port, '/api/v1/messages', {
      token: send,
      json: { ...json, subject: 'idem changed' },
      headers,
    });
    expect(changed.status).toBe(422);
    expect(changed.body['title']).toBe('Idempotency key reused');
    // The key is the API key's own: another key may use the same words.
    const theirs = await call(port, '/api/v1/messages', {
      token: other,
      json: { from: 'a@other.example', to: 'once@dest.test', subject: 'idem theirs', text: 't' },
      headers,
    });
    expect(theirs.status).toBe(202);
    expect(theirs.body['id']).not.toBe(id);
    const bad = await call(port, '/api/v1/messages', {
      token: send,
      json,
      headers: { 'idempotency-key': 'has spaces' },
    });
    expect(bad.status).toBe(400);
    // A call refused as a whole leaves the key free for a corrected retry.
    const refused = await call(port, '/api/v1/messages', {
      token: send,
      json: { from: 'x@elsewhere.example', to: 'once@dest.test', subject: 's', text: 't' },
      headers: { 'idempotency-key': 'fix-and-retry' },
    });
    expect(refused.status).toBe(422);
    const fixed = await call(port, '/api/v1/messages', {
      token: send,
      json: { from: 'sender@example.com', to: 'once@dest.test', subject: 'idem fixed', text: 't' },
      headers: { 'idempotency-key': 'fix-and-retry' },
    });
    expect(fixed.status).toBe(202);
    await until(
      'the sent messages',
      () => subjects(r).filter((x) => x.startsWith('idem ')).length >= 3,
      15_000,
    );
    await new Promise((res) => setTimeout(res, 500));
    expect(
      subjects(r)
        .filter((x) => x.startsWith('idem '))
        .sort(),
    ).toEqual(['idem fixed', 'idem once', 'idem theirs']);
  }, 30_000);

  it('refuses what SMTP would refuse, recipient by recipient or the whole message', async () => {
    expect(cli(r.t, ['suppression', 'add', 'gone@dest.test', '--account', 'app']).status).toBe(0);
    const some = await call(port, '/api/v1/messages', {
      token: send,
      json: { from: 'sender@example.com', to: ['gone@dest.test', 'fine@dest.test'], subject: 's', text: 't' },
    });
    expect(some.status).toBe(202);
    expect(some.body['recipients']).toMatchObject([
      { address: 'gone@dest.test', status: 'refused', code: 550, enhanced: '5.7.1' },
      { address: 'fine@dest.test', status: 'queued' },
    ]);
    const none = await call(port, '/api/v1/messages', {
      token: send,
      json: { from: 'sender@example.com', to: 'gone@dest.test', subject: 's', text: 't' },
    });
    expect(none.status).toBe(422);
    expect(none.body).toMatchObject({ title: 'No recipient accepted', status: 422 });
    const foreign = await call(port, '/api/v1/messages', {
      token: send,
      json: { from: 'someone@elsewhere.example', to: 'x@dest.test', subject: 's', text: 't' },
    });
    expect(foreign.status).toBe(422);
    expect(foreign.body['detail']).toMatch(/From: domain not allowed for this account/);
    expect(foreign.body['smtp']).toEqual({ code: 550, enhanced: '5.7.1' });
    const asOther = await call(port, '/api/v1/messages', {
      token: send,
      json: { account: 'other', from: 'a@other.example', to: 'x@dest.test', subject: 's', text: 't' },
    });
    expect(asOther.status).toBe(403);
  });

  it('answers bad requests with problem details, never a stack trace', async () => {
    const badJson = await call(port, '/api/v1/messages', { token: send, raw: '{"from": ' });
    expect(badJson.status).toBe(400);
    expect(badJson.headers['content-type']).toBe('application/problem+json');
    expect(badJson.body).toMatchObject({ type: 'about:blank', title: 'Malformed JSON', status: 400 });
    const wrongType = await call(port, '/api/v1/messages', { token: send, raw: 'hello', type: 'text/plain' });
    expect(wrongType.status).toBe(415);
    const invalid = await call(port, '/api/v1/messages', { token: send, json: { to: 'x@dest.test' } });
    expect(invalid.status).toBe(400);
    expect(invalid.body['detail']).toMatch(/from/);
    const huge = await call(port, '/api/v1/messages', {
      token: send,
      json: { from: 'sender@example.com', to: 'x@dest.test', text: 'x'.repeat(40 * 1024 * 1024) },
    });
    expect(huge.status).toBe(413);
    const many = await call(port, '/api/v1/messages', {
      token: send,
      json: {
        from: 'sender@example.com',
        bcc: Array.from({ length: 1001 }, (_, i) => `r${i}@dest.test`),
        text: 't',
      },
    });
    expect(many.status).toBe(422);
    expect(many.body['title']).toBe('Too many recipients');
    const readOnly = await call(port, '/api/v1/messages', {
      token: read,
      json: { from: 'sender@example.com', to: 'x@dest.test', text: 't' },
    });
    expect(readOnly.status).toBe(403);
    expect(readOnly.body['detail']).toMatch(/"send" scope/);
    const nowhere = await call(port, '/api/v1/nothing', { token: send });
    expect(nowhere.status).toBe(404);
  }, 30_000);

  it('describes itself in an OpenAPI 3.1 document served without a key', async () => {
    const doc = await call(port, '/api/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body['openapi']).toBe('3.1.0');
    const paths = doc.body['paths'] as Record<string, Record<string, unknown>>;
    expect(Object.keys(paths)).toEqual(expect.arrayContaining(['/messages', '/messages/{id}']));
    const components = doc.body['components'] as { schemas: Record<string, unknown> };
    const body = JSON.stringify(components.schemas['SendRequest']);
    // The request schema is the validator's own: both shapes of a request show.
    expect(body).toContain('"subject"');
    expect(body).toContain('"envelope"');
  });

  it('refuses missing, wrong and revoked keys, and then an address that keeps guessing', async () => {
    const none = await call(port, '/api/v1/messages/x', {});
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const wrong = await call(port, '/api/v1/messages/x', { token: `${send.split('.')[0]!}.wrongsecret` });
    expect(wrong.status).toBe(401);
    const doomed = keyFor(r, ['app', '--scope', 'read']);
    const list = JSON.parse(
      `[${cli(r.t, ['--json', 'key', 'list']).stdout.trim().split('\n').join(',')}]`,
    ) as {
      id: string;
    }[];
    const doomedId = doomed.split('.')[0]!;
    expect(list.some((k) => k.id === doomedId)).toBe(true);
    expect(cli(r.t, ['key', 'revoke', doomedId]).status).toBe(0);
    expect((await call(port, '/api/v1/messages/x', { token: doomed })).status).toBe(401);
    // Another client address on loopback, so the other tests' address is not the one limited.
    for (let i = 0; i < 10; i++)
      expect(
        (await call(port, '/api/v1/messages/x', { token: 'pk_x.y', localAddress: '127.0.0.9' })).status,
      ).toBe(401);
    const limited = await call(port, '/api/v1/messages/x', { token: send, localAddress: '127.0.0.9' });
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('60');
    expect((await call(port, '/api/v1/messages/x', { token: send })).status).toBe(404);
  }, 30_000);
});
