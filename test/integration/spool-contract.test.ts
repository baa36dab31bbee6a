import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { NewMessage, Spool } from '../../src/spool/index.js';
import { backends } from '../helpers/spools.js';

// The spool's contract: what every backend must do the same way. Each case runs against SQLite
// and against a real PostgreSQL server.

const update = (id: number, messageId: string) => ({
  recipientId: id,
  messageId,
  accountId: null,
  domain: 'dest.test',
  state: 'delivered' as const,
  event: 'delivery' as const,
  attempted: true,
  mx: 'mx',
  reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
});

const message = (rcpts: { address: string; domain: string }[], body = 'x\r\n'): NewMessage => ({
  accountId: null,
  mailFrom: 'a@example.com',
  recipients: rcpts,
  headerMessageId: null,
  body: Buffer.from(body),
  listener: 'submission',
});

const to = (n: number, domain = 'dest.test') =>
  Array.from({ length: n }, (_, i) => ({ address: `r${i}@${domain}`, domain }));

describe.each(backends())('spool contract on $name', (backend) => {
  let now = Date.UTC(2026, 0, 1);
  const clock = { now: () => now };
  afterEach(() => backend.cleanup());
  afterAll(() => backend.shutdown());

  const setup = async (
    recipients: { address: string; domain: string }[],
  ): Promise<{ s: Spool; id: string }> => {
    const s = await backend.open({ clock });
    const id = s.messages.newId();
    await s.messages.insert(id, message(recipients));
    return { s, id };
  };
  const lease = (
    s: Spool,
    holder: string,
    limit = 10,
    room: Record<string, number> = {},
    newDomainRoom = 100,
  ) => s.queue.leaseDue({ holder, limit, leaseMs: 1000, room, newDomainRoom });

  it('keeps a lease for its holder until it lapses, then gives it to another, whose outcome alone applies', async () => {
    const { s, id } = await setup([{ address: 'a@dest.test', domain: 'dest.test' }]);
    const [r] = (await lease(s, 'n:h1')).due;
    expect(r).toMatchObject({
      address: 'a@dest.test',
      domain: 'dest.test',
      messageId: id,
      mailFrom: 'a@example.com',
    });
    now += 500;
    expect((await lease(s, 'n:h2')).due).toHaveLength(0);
    expect(await s.queue.renew('n:h1', [r!.id], now + 1000)).toBe(1);
    now += 700;
    expect((await lease(s, 'n:h2')).due).toHaveLength(0);
    now += 1000;
    const [again] = (await lease(s, 'n:h2')).due;
    expect(again?.id).toBe(r!.id);
    expect(again?.attempts).toBe(0);
    expect(await s.queue.complete('n:h1', [update(r!.id, id)])).toEqual([]);
    expect(await s.queue.renew('n:h1', [r!.id], now + 1000)).toBe(0);
    await s.queue.release('n:h1', [r!.id]);
    expect(await s.queue.fenced('n:h1', [r!.id])).toEqual([r!.id]);
    expect(await s.queue.fenced('n:h2', [r!.id])).toEqual([]);
    expect((await s.queue.complete('n:h2', [update(r!.id, id)])).map((u) => u.recipientId)).toEqual([r!.id]);
    const stored = await s.messages.get(id);
    expect(stored!.recipients[0]).toMatchObject({ state: 'delivered', attempts: 1 });
    const events = await s.queue.events(id);
    expect(events.map((e) => e.type)).toEqual(['reception', 'delivery']);
    expect(events[1]).toMatchObject({
      attempt: 1,
      mx: 'mx',
      reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
    });
  });

  it('recovers at start-up only the leases of earlier instances of its own node', async () => {
    const { s } = await setup([
      { address: 'a@dest.test', domain: 'dest.test' },
      { address: 'b@other.test', domain: 'other.test' },
    ]);
    await lease(s, 'node1:old', 10, { 'other.test': 0 });
    await lease(s, 'node1:live');
    expect(await s.queue.recoverInflight('node1:live')).toBe(1);
    const counts = await s.queue.counts();
    expect([counts.queued, counts.inflight]).toEqual([1, 1]);
  });

  it('gives each destination at most its room, and none to one that has no room', async () => {
    const { s } = await setup([
      ...to(20, 'busy.test'),
      ...to(5, 'new.test'),
      { address: 'x@full.test', domain: 'full.test' },
    ]);
    const { due, more } = await lease(s, 'n:h', 100, { 'busy.test': 3, 'full.test': 0 }, 2);
    const byDomain = (d: string): number => due.filter((r) => r.domain === d).length;
    expect([byDomain('busy.test'), byDomain('new.test'), byDomain('full.test')]).toEqual([3, 2, 0]);
    expect(more).toBe(true);
  });

  it('never leases a suspended destination, and leases it again once resumed', async () => {
    const { s } = await setup([...to(2, 'a.test'), ...to(2, 'b.test')]);
    await s.queue.suspend('a.test', 'manual');
    expect(await s.queue.suspended()).toEqual(['a.test']);
    expect((await lease(s, 'n:h')).due.map((r) => r.domain)).toEqual(['b.test', 'b.test']);
    expect(await s.queue.resume('a.test')).toBe(true);
    expect(await s.queue.resume('a.test')).toBe(false);
    expect((await lease(s, 'n:h')).due.map((r) => r.domain)).toEqual(['a.test', 'a.test']);
  });

  it('commits concurrent inserts together and resolves each only once it is stored', async () => {
    const s = await backend.open({ clock });
    const ids = Array.from({ length: 50 }, () => s.messages.newId());
    expect(new Set(ids).size).toBe(50);
    await Promise.all(
      ids.map((id, i) =>
        s.messages.insert(id, {
          ...message([{ address: `r${i}@dest.test`, domain: 'dest.test' }], `body ${i}\r\n`),
          headerMessageId: `<${i}@x>`,
        }),
      ),
    );
    expect(await s.messages.count()).toBe(50);
    const m = await s.messages.get(ids[7]!);
    expect(m?.body.toString()).toBe('body 7\r\n');
    expect(m?.recipients[0]).toMatchObject({ address: 'r7@dest.test', state: 'queued', attempts: 0 });
    // Seen by another connection (the CLI) at once.
    const other = await backend.reopen({ clock });
    expect(await other.messages.count()).toBe(50);
  });

  it('fails only the write that fails when writes commit together', async () => {
    const s = await backend.open({ clock });
    const [x, y, z] = [s.messages.newId(), s.messages.newId(), s.messages.newId()];
    await s.messages.insert(x, message(to(1)));
    const results = await Promise.allSettled([
      s.messages.insert(y, message(to(2))),
      s.messages.insert(x, message(to(1))),
      s.messages.insert(z, message(to(3))),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'PETREL_SPOOL_WRITE' });
    expect(await s.messages.count()).toBe(3);
    expect((await s.messages.get(z))!.recipients).toHaveLength(3);
    expect((await s.queue.counts()).queued).toBe(6);
  });

  it('stores 8-bit bodies byte for byte', async () => {
    const s = await backend.open({ clock });
    const body = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0xc3, 0xa9, 0x80, 0x2e, 0x0d, 0x0a]);
    const id = s.messages.newId();
    await s.messages.insert(id, { ...message(to(1)), body });
    expect((await s.messages.get(id))!.body.equals(body)).toBe(true);
    expect((await s.queue.body(id))!.equals(body)).toBe(true);
  });

  it('gives each leased job its message body, also for many recipients of one message and after a lease', async () => {
    const s = await backend.open({ clock });
    const bodies = [Buffer.from('Subject: one\r\n\r\n1\r\n'), Buffer.from('Subject: two\r\n\r\n2\r\n')];
    const ids: string[] = [];
    for (const [i, body] of bodies.entries()) {
      ids.push(s.messages.newId());
      await s.messages.insert(ids[i]!, { ...message(to(3, `d${i}.test`)), body });
    }
    const { due } = await lease(s, 'n:a.1');
    expect(due).toHaveLength(6);
    expect(due.every((d) => !('body' in d))).toBe(true);
    // Each recipient's job reads the body; every read gives the same bytes.
    for (const d of due)
      expect((await s.queue.body(d.messageId))!.equals(bodies[ids.indexOf(d.messageId)]!)).toBe(true);
    expect(await s.queue.body('no-such-message')).toBeNull();
  });

  it("leaves a paused account's marketing mail queued, and leases its transactional mail and everyone else's", async () => {
    const s = await backend.open({ clock });
    const paused = await s.accounts.add('paused', 'h', ['example.com']);
    const other = await s.accounts.add('other', 'h', ['example.com']);
    const ids: Record<string, string> = {};
    for (const [name, accountId, stream] of [
      ['promo', paused.id, 'marketing'],
      ['receipt', paused.id, 'transactional'],
      ['theirs', other.id, 'marketing'],
    ] as const) {
      ids[name] = s.messages.newId();
      await s.messages.insert(ids[name]!, { ...message(to(1, `${name}.test`)), accountId, stream });
    }
    expect(await s.guard.pause(paused.id, 'complaint rate 1%')).toBe(true);
    expect(await s.guard.pause(paused.id, 'again')).toBe(false);
    expect(await s.guard.pauses()).toMatchObject([{ accountId: paused.id, reason: 'complaint rate 1%' }]);
    const first = await s.queue.leaseDue({
      holder: 'n:a.1',
      limit: 10,
      leaseMs: 1000,
      room: {},
      newDomainRoom: 10,
      pausedAccounts: [paused.id],
    });
    expect(first.due.map((d) => d.messageId).sort()).toEqual([ids['receipt'], ids['theirs']].sort());
    expect(await s.guard.resume(paused.id)).toBe(true);
    expect(await s.guard.resume(paused.id)).toBe(false);
    expect(await s.guard.pauses()).toEqual([]);
    const then = await lease(s, 'n:a.1');
    expect(then.due.map((d) => d.messageId)).toEqual([ids['promo']]);
  });

  it('keeps staged copies from delivery until they are published, and discards them on failure', async () => {
    const s = await backend.open({ clock });
    const [a, b, c] = [s.messages.newId(), s.messages.newId(), s.messages.newId()];
    await s.messages.stage([
      { id: a, message: message(to(1, 'a.test')) },
      { id: b, message: message(to(1, 'b.test')) },
    ]);
    await s.messages.stage([{ id: c, message: message(to(1, 'c.test')) }]);
    expect((await lease(s, 'n:h')).due).toHaveLength(0);
    expect(await s.messages.publish([a, b])).toBe(2);
    await s.messages.discard([c]);
    expect(await s.messages.get(c)).toBeNull();
    expect((await lease(s, 'n:h')).due.map((r) => r.domain).sort()).toEqual(['a.test', 'b.test']);
    expect((await s.queue.events(a)).map((e) => e.type)).toEqual(['reception']);
    // Discarding published mail does nothing.
    await s.messages.discard([a]);
    expect(await s.messages.get(a)).not.toBeNull();
  });

  it('queues follow-ups only for outcomes that applied, when a recipient left flight meanwhile', async () => {
    const s = await backend.open({ clock });
    const id = s.messages.newId();
    await s.messages.insert(id, {
      ...message(
        ['a@dest.test', 'b@dest.test'].map((address) => ({ address, domain: 'dest.test' })),
        'original\r\n',
      ),
      mailFrom: 's@example.com',
    });
    const leased = (await lease(s, 'n:h1', 10)).due;
    expect(leased.map((r) => r.address).sort()).toEqual(['a@dest.test', 'b@dest.test']);
    const b = leased.find((r) => r.address === 'b@dest.test')!;
    await s.queue.release('n:h1', [b.id]);
    const seen: string[][] = [];
    const dsnIds: string[] = [];
    const applied = await s.queue.complete(
      'n:h1',
      leased.map((r) => ({
        recipientId: r.id,
        messageId: id,
        accountId: null,
        domain: 'dest.test',
        state: 'bounced' as const,
        event: 'bounce' as const,
        attempted: true,
        mx: null,
        reply: { code: 550, enhanced: '5.1.1', text: 'no' },
      })),
      (done) => {
        const addresses = done.map((u) => leased.find((r) => r.id === u.recipientId)!.address).sort();
        seen.push(addresses);
        const dsnId = s.messages.newId();
        dsnIds.push(dsnId);
        return [
          {
            id: dsnId,
            message: {
              ...message(
                [{ address: 's@example.com', domain: 'example.com' }],
                `failed: ${addresses.join(',')}\r\n`,
              ),
              mailFrom: '',
            },
          },
        ];
      },
    );
    expect(applied.map((u) => u.recipientId)).toEqual([leased.find((r) => r.address === 'a@dest.test')!.id]);
    expect(seen).toEqual([['a@dest.test', 'b@dest.test'], ['a@dest.test']]);
    expect(await s.messages.get(dsnIds[0]!)).toBeNull();
    expect((await s.messages.get(dsnIds[1]!))?.body.toString()).toBe('failed: a@dest.test\r\n');
    expect((await s.messages.get(id))?.recipients.map((r) => r.state)).toEqual(['bounced', 'queued']);
  });

  it('remembers when a recipient’s sender was told of its delay, and keeps the first time', async () => {
    const { s, id } = await setup([{ address: 'a@dest.test', domain: 'dest.test' }]);
    const deferred = (rcpt: number, delayWarned: boolean) => ({
      ...update(rcpt, id),
      state: 'queued' as const,
      event: 'transient_failure' as const,
      nextAttemptAt: now,
      reply: { code: 451, enhanced: '4.2.1', text: 'later' },
      ...(delayWarned ? { delayWarned } : {}),
    });
    // The notice queued below is for another destination: it stays where it is.
    const leaseOne = async () => {
      const [r] = (await lease(s, 'n:h1', 10, { 'example.com': 0 })).due;
      expect(r?.address).toBe('a@dest.test');
      return r!;
    };
    let r = await leaseOne();
    expect(r.delayWarnedAt).toBeNull();
    await s.queue.complete('n:h1', [deferred(r.id, false)]);
    r = await leaseOne();
    expect(r.delayWarnedAt).toBeNull();
    const warnedAt = now;
    // With the delay DSN as its follow-up, as the queue writes it.
    const notice = s.messages.newId();
    await s.queue.complete('n:h1', [deferred(r.id, true)], () => [
      {
        id: notice,
        message: { ...message([{ address: 's@example.com', domain: 'example.com' }]), mailFrom: '' },
      },
    ]);
    expect(await s.messages.get(notice)).not.toBeNull();
    now += 1000;
    r = await leaseOne();
    expect(r.delayWarnedAt).toBe(warnedAt);
    await s.queue.complete('n:h1', [deferred(r.id, true)]);
    now += 1000;
    r = await leaseOne();
    expect(r.delayWarnedAt).toBe(warnedAt);
    const events = (await s.events.tail(10, id)).filter((e) => e.type === 'transient_failure');
    expect(events.map((e) => e.details)).toEqual(
      expect.arrayContaining([null, { delayNotice: true }, { delayNotice: true }]),
    );
    expect(events).toHaveLength(3);
  });

  it('cancels what is unfinished of a message, with an event for each recipient', async () => {
    const { s, id } = await setup(to(3));
    const [first] = (await lease(s, 'n:h', 1)).due;
    await s.queue.complete('n:h', [update(first!.id, id)]);
    expect(await s.queue.cancelMessage(id)).toBe(2);
    expect((await s.messages.get(id))!.recipients.map((r) => r.state)).toEqual([
      'delivered',
      'cancelled',
      'cancelled',
    ]);
    expect((await s.queue.events(id)).map((e) => e.type)).toEqual([
      'reception',
      'delivery',
      'cancelled',
      'cancelled',
    ]);
    expect((await s.queue.counts()).cancelled).toBe(2);
  });

  it('lists, counts and retries the queue', async () => {
    const { s, id } = await setup([...to(3, 'a.test'), ...to(1, 'b.test')]);
    expect((await s.queue.list({ limit: 10 })).map((e) => e.domain)).toEqual([
      'a.test',
      'a.test',
      'a.test',
      'b.test',
    ]);
    expect((await s.queue.list({ domain: 'b.test', limit: 10 })).map((e) => e.address)).toEqual([
      'r0@b.test',
    ]);
    expect(await s.queue.stats()).toEqual([
      { domain: 'a.test', queued: 3, inflight: 0, oldestReceivedAt: now },
      { domain: 'b.test', queued: 1, inflight: 0, oldestReceivedAt: now },
    ]);
    expect(await s.queue.retryMessage(id)).toBe(4);
    expect(await s.queue.retryDomain('b.test')).toBe(1);
    const r = await s.queue.recipient((await s.queue.list({ domain: 'b.test', limit: 1 }))[0]!.recipientId);
    expect(r).toMatchObject({ messageId: id, address: 'r0@b.test', domain: 'b.test', accountId: null });
  });

  it('claims a node name for one live instance, and gives a silent node’s leases to the others', async () => {
    const { s } = await setup(to(4));
    expect(await s.queue.heartbeat('node1:d1.aaa/w1', 30_000)).toBe(true);
    // Another worker of the same instance: still ours.
    expect(await s.queue.heartbeat('node1:d1.aaa/w2', 30_000)).toBe(true);
    await lease(s, 'node1:d1.aaa/w1', 2);
    expect(await s.queue.releaseLostNodes(30_000)).toBe(0);
    if (backend.name === 'sqlite') return;
    // Another data dir under the same name while the first instance is alive is refused…
    expect(await s.queue.heartbeat('node1:d9.bbb', 30_000)).toBe(false);
    expect(await s.queue.heartbeat('node2:d2.ccc', 30_000)).toBe(true);
    await lease(s, 'node2:d2.ccc', 1);
    // …and once node1 has been silent past the timeout, its leases (only) are due again.
    now += 31_000;
    expect(await s.queue.heartbeat('node2:d2.ccc', 30_000)).toBe(true);
    expect(await s.queue.releaseLostNodes(30_000)).toBe(2);
    const counts = await s.queue.counts();
    expect([counts.queued, counts.inflight]).toEqual([3, 1]);
    // A restart on node2's own data dir (it holds its lock) takes the name at once.
    expect(await s.queue.heartbeat('node2:d2.ddd', 30_000)).toBe(true);
    expect(await s.queue.recoverInflight('node2:d2.ddd')).toBe(1);
  });

  it('never gives one recipient to two holders leasing at the same moment', async () => {
    const { s } = await setup(to(300));
    const other = await backend.reopen({ clock });
    const rounds = await Promise.all(
      Array.from({ length: 6 }, (_, i) => lease(i % 2 === 0 ? s : other, `n${i}:x`, 60, {}, 1000)),
    );
    const ids = rounds.flatMap((r) => r.due.map((d) => d.id));
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids).size).toBe(ids.length);
    expect((await s.queue.counts()).inflight).toBe(ids.length);
  });

  it('refuses a duplicate account name, and sees another connection’s changes', async () => {
    const s = await backend.open({ clock });
    const cli = await backend.reopen({ clock });
    const before = await s.dataVersion();
    await cli.accounts.add('app', 'h', ['example.com']);
    await expect(cli.accounts.add('app', 'h', ['example.com'])).rejects.toMatchObject({
      code: 'PETREL_ACCOUNT_EXISTS',
    });
    expect((await s.accounts.list()).map((a) => a.name)).toEqual(['app']);
    const deadline = Date.now() + 5000;
    while ((await s.dataVersion()) === before && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(await s.dataVersion()).not.toBe(before);
    // Read (and, on PostgreSQL, cached) here, changed there: seen here within moments.
    expect((await s.accounts.get('app'))?.passwordHash).toBe('h');
    const eventually = async <T>(read: () => Promise<T>, want: T): Promise<T> => {
      const until = Date.now() + 5000;
      let v = await read();
      while (v !== want && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
        v = await read();
      }
      return v;
    };
    await cli.accounts.setPassword('app', 'h2');
    expect(await eventually(async () => (await s.accounts.get('app'))?.passwordHash, 'h2')).toBe('h2');
    expect(await cli.accounts.remove('app')).toBe(true);
    expect(await eventually(() => s.accounts.get('app'), null)).toBeNull();
  });

  it('verifies an API key by its token alone, and not once it is revoked, expired or its account gone', async () => {
    const s = await backend.open({ clock });
    const cli = await backend.reopen({ clock });
    const app = await cli.accounts.add('app', 'h', ['example.com']);
    const t0 = 1_700_000_000_000;
    const made = await cli.keys.create(
      { accountId: app.id, scopes: ['send', 'read'], networks: ['10.0.0.0/8'] },
      t0,
    );
    expect(made.token.startsWith(`${made.key.id}.`)).toBe(true);
    const ok = await s.keys.verify(made.token, t0 + 1);
    expect(ok).toMatchObject({
      id: made.key.id,
      accountId: app.id,
      accountName: 'app',
      scopes: ['send', 'read'],
    });
    expect(ok?.networks).toEqual(['10.0.0.0/8']);
    // A wrong secret for a real id, a malformed token, and a made-up one.
    const [id, secret] = made.token.split('.') as [string, string];
    expect(
      await s.keys.verify(`${id}.${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`, t0),
    ).toBeNull();
    expect(await s.keys.verify('nonsense', t0)).toBeNull();
    expect(await s.keys.verify(`pk_0000000000000000.${secret}`, t0)).toBeNull();
    // Nothing of the secret is stored in the clear.
    expect(JSON.stringify(await s.keys.list())).not.toContain(secret);
    await s.keys.touch(made.key.id, t0 + 5);
    expect((await cli.keys.list(app.id))[0]?.lastUsedAt).toBe(t0 + 5);
    const expiring = await cli.keys.create({ accountId: null, scopes: ['admin'], expiresAt: t0 + 1000 }, t0);
    expect(await s.keys.verify(expiring.token, t0 + 999)).toMatchObject({
      accountId: null,
      accountName: null,
    });
    expect(await s.keys.verify(expiring.token, t0 + 1000)).toBeNull();
    expect((await s.keys.list(null)).map((k) => k.id)).toEqual([expiring.key.id]);
    expect(await cli.keys.revoke(made.key.id, t0 + 10)).toBe(true);
    expect(await cli.keys.revoke(made.key.id, t0 + 11)).toBe(false);
    expect(await s.keys.verify(made.token, t0 + 12)).toBeNull();
    const again = await cli.keys.create({ accountId: app.id, scopes: ['send'] }, t0);
    expect(await s.keys.verify(again.token, t0)).not.toBeNull();
    await cli.accounts.remove('app');
    expect(await s.keys.verify(again.token, t0)).toBeNull();
    expect(await s.keys.list(app.id)).toEqual([]);
  });

  it('claims an Idempotency-Key once, keeps its answer a day, and lets an abandoned claim go', async () => {
    const s = await backend.open({ clock });
    const other = await backend.reopen({ clock });
    const t0 = 1_700_000_000_000;
    expect(await s.idempotency.begin('pk_a', 'k1', 'h1', t0)).toEqual({ state: 'new' });
    expect(await other.idempotency.begin('pk_a', 'k1', 'h1', t0)).toEqual({
      state: 'pending',
      bodyHash: 'h1',
    });
    expect(await other.idempotency.begin('pk_b', 'k1', 'h1', t0)).toEqual({ state: 'new' });
    await s.idempotency.finish('pk_a', 'k1', 202, '{"id":"m1"}');
    // Finished: abandon does not undo it.
    await s.idempotency.abandon('pk_a', 'k1');
    expect(await other.idempotency.begin('pk_a', 'k1', 'h2', t0 + 1)).toEqual({
      state: 'done',
      bodyHash: 'h1',
      status: 202,
      response: '{"id":"m1"}',
    });
    await other.idempotency.abandon('pk_b', 'k1');
    expect(await s.idempotency.begin('pk_b', 'k1', 'h3', t0 + 2)).toEqual({ state: 'new' });
    // A day later the key is free (the sweep runs on a later claim, at most once a minute).
    const fresh = await backend.reopen({ clock });
    expect(await fresh.idempotency.begin('pk_c', 'k9', 'h', t0 + 86_400_001)).toEqual({ state: 'new' });
    expect(await fresh.idempotency.begin('pk_a', 'k1', 'h4', t0 + 86_400_002)).toEqual({ state: 'new' });
  });

  it('keeps account limits, changes one without the other, clears them, and shows the change to another connection', async () => {
    const s = await backend.open({ clock });
    const cli = await backend.reopen({ clock });
    const plain = await cli.accounts.add('plain', 'h', ['example.com']);
    expect(plain.limits).toEqual({ rate: null, dailyQuota: null, egress: null });
    const added = await cli.accounts.add('app', 'h', ['example.com'], 'transactional', {
      rate: { count: 600, windowMs: 60_000 },
      dailyQuota: 50_000,
      egress: 'ip2',
    });
    expect(added.limits).toEqual({
      rate: { count: 600, windowMs: 60_000 },
      dailyQuota: 50_000,
      egress: 'ip2',
    });
    // Read (and, on PostgreSQL, cached) here before the change.
    expect((await s.accounts.get('app'))?.limits.dailyQuota).toBe(50_000);
    const changed = await cli.accounts.setLimits('app', { dailyQuota: 5 });
    expect(changed.limits).toEqual({ rate: { count: 600, windowMs: 60_000 }, dailyQuota: 5, egress: 'ip2' });
    const until = Date.now() + 5000;
    while ((await s.accounts.get('app'))?.limits.dailyQuota !== 5 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 10));
    expect((await s.accounts.get('app'))?.limits).toEqual(changed.limits);
    expect((await cli.accounts.setLimits('app', { rate: null })).limits).toEqual({
      rate: null,
      dailyQuota: 5,
      egress: 'ip2',
    });
    expect(
      (
        await cli.accounts.setLimits('app', {
          rate: { count: 5, windowMs: 1000 },
          dailyQuota: null,
          egress: null,
        })
      ).limits,
    ).toEqual({ rate: { count: 5, windowMs: 1000 }, dailyQuota: null, egress: null });
    expect((await s.accounts.list()).map((a) => [a.name, a.limits.rate?.count ?? null])).toEqual([
      ['app', 5],
      ['plain', null],
    ]);
    await expect(cli.accounts.setLimits('ghost', { dailyQuota: 1 })).rejects.toMatchObject({
      code: 'PETREL_ACCOUNT_NOT_FOUND',
    });
  });

  it('counts the recipients an account queued since a time, from the reception events', async () => {
    const s = await backend.open({ clock });
    const app = await s.accounts.add('app', 'h', ['example.com']);
    const other = await s.accounts.add('other', 'h', ['example.com']);
    const start = now;
    await s.messages.insert(s.messages.newId(), { ...message(to(2)), accountId: app.id });
    now += 1000;
    const since = now;
    await s.messages.insert(s.messages.newId(), { ...message(to(3)), accountId: app.id });
    await s.messages.insert(s.messages.newId(), { ...message(to(1)), accountId: other.id });
    // Copies of a fan-out count once they are published, each with its own recipients.
    const copies = [s.messages.newId(), s.messages.newId()];
    await s.messages.stage(
      copies.map((id, i) => ({
        id,
        message: { ...message([{ address: `c${i}@dest.test`, domain: 'dest.test' }]), accountId: app.id },
      })),
    );
    expect(await s.accounts.recipientsQueuedSince(app.id, since)).toBe(3);
    await s.messages.publish(copies);
    expect(await s.accounts.recipientsQueuedSince(app.id, since)).toBe(5);
    expect(await s.accounts.recipientsQueuedSince(app.id, start)).toBe(7);
    expect(await s.accounts.recipientsQueuedSince(other.id, start)).toBe(1);
    expect(await s.accounts.recipientsQueuedSince(app.id, now + 1)).toBe(0);
  });

  it('keeps DKIM keys with one active per domain and algorithm', async () => {
    const s = await backend.open({ clock });
    const key = (selector: string) => ({
      domain: 'example.com',
      selector,
      algorithm: 'rsa' as const,
      privateKeyPath: `/k/${selector}.pem`,
      publicKey: 'MIIB',
    });
    expect(await s.dkimKeys.add(key('s1'))).toBe(true);
    now += 1;
    expect(await s.dkimKeys.add(key('s2'))).toBe(true);
    expect(await s.dkimKeys.add(key('s2'))).toBe(false);
    expect((await s.dkimKeys.active()).map((k) => k.selector)).toEqual(['s2']);
    expect((await s.dkimKeys.list()).map((k) => [k.selector, k.active])).toEqual([
      ['s1', false],
      ['s2', true],
    ]);
  });

  it('answers the readiness probe', async () => {
    const s = await backend.open({ clock });
    expect(await s.writable()).toBe(true);
    expect(s.secret.length).toBe(32);
  });
});
