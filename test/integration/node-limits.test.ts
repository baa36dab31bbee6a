import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

/** Connects and resolves with the first line the listener sends (220 banner or 421 refusal). */
function firstLine(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(text.slice(0, end));
      }
    });
    socket.on('error', reject);
  });
}

const plain = (user: string, password: string): string =>
  `AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`;

describe('a node of two workers keeps the per-address limits once for the node', () => {
  const MAX = 4;
  let t: TestDir;
  let daemon: Daemon;
  beforeAll(async () => {
    t = makeTestDir(
      `[server]\nworkers = 2\n\n[inbound]\nlisten = ["127.0.0.1:0"]\nmax_connections_per_ip = ${MAX}\n`,
      `max_connections_per_ip = ${MAX}\nauth_max_failures = 3\nauth_failure_window = "10m"`,
    );
    addUser(t, 'app', ['example.com'], 'pw');
    daemon = await startDaemon(t);
  });
  afterAll(async () => {
    await daemon?.stop();
    t?.cleanup();
  });

  const linesSince = (from: number, msg: string) => daemon.logs.slice(from).filter((l) => l.msg === msg);
  const workersOf = (lines: readonly Record<string, unknown>[]) => new Set(lines.map((l) => l['worker']));

  it(`holds exactly ${MAX} submission sessions from 127.0.0.1 across both workers; the next gets 421`, async () => {
    const from = daemon.logs.length;
    const held: RawSmtp[] = [];
    for (let i = 0; i < MAX; i++) {
      const c = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.1' });
      await c.login('app', 'pw');
      held.push(c);
    }
    // Both workers hold some of them: one worker alone would have its own cap to spare.
    expect(workersOf(linesSince(from, 'authenticated'))).toEqual(new Set([1, 2]));
    // Refused by each worker, not only by the one that happens to hold more of them.
    for (
      let i = 0;
      i < 8 && workersOf(linesSince(from, 'too many connections from one address')).size < 2;
      i++
    ) {
      expect(await firstLine(daemon.ports.submission, '127.0.0.1')).toMatch(/^421 4\.7\.0/);
      await until(
        'the refusal logged',
        () => linesSince(from, 'too many connections from one address').length > i,
      );
    }
    expect(workersOf(linesSince(from, 'too many connections from one address'))).toEqual(new Set([1, 2]));
    // A session that ends gives its slot back to the node, whichever worker the next one reaches.
    held.pop()!.close();
    const again = await until('a slot free again', async () => {
      const c = await RawSmtp.connect(daemon.ports.submission, { localAddress: '127.0.0.1' }).catch(
        () => null,
      );
      return c;
    });
    expect(await firstLine(daemon.ports.submission, '127.0.0.1')).toMatch(/^421 4\.7\.0/);
    again.close();
    for (const c of held) c.close();
  });

  it(`holds exactly ${MAX} inbound sessions from one address across the node; the next gets 421`, async () => {
    const held: RawSmtp[] = [];
    for (let i = 0; i < MAX; i++)
      held.push(await RawSmtp.connect(daemon.ports.inbound!, { localAddress: '127.0.0.2' }));
    for (let i = 0; i < 2; i++) {
      expect(await firstLine(daemon.ports.inbound!, '127.0.0.2')).toMatch(/^421 4\.7\.0/);
    }
    for (const c of held) c.close();
  });

  it('refuses AUTH on either worker once auth_max_failures wrong passwords came through both', async () => {
    const from = daemon.logs.length;
    const at = { localAddress: '127.0.0.3' };
    for (let i = 0; i < 3; i++) {
      const c = await RawSmtp.connect(daemon.ports.submission, at);
      await c.command('EHLO client.test');
      await c.startTls();
      await c.command('EHLO client.test');
      expect((await c.command(plain('app', `wrong-${i}`))).code).toBe(535);
      c.close();
    }
    expect(workersOf(linesSince(from, 'authentication failed'))).toEqual(new Set([1, 2]));
    // Even the right password, on new connections until each worker has answered one.
    for (let i = 0; i < 8 && workersOf(linesSince(from, 'auth refused: too many failures')).size < 2; i++) {
      const c = await RawSmtp.connect(daemon.ports.submission, at);
      await c.command('EHLO client.test');
      await c.startTls();
      await c.command('EHLO client.test');
      const r = await c.command(plain('app', 'pw'));
      expect(r.code, r.text).toBe(454);
      c.close();
      await until('the refusal logged', () => linesSince(from, 'auth refused: too many failures').length > i);
    }
    expect(workersOf(linesSince(from, 'auth refused: too many failures'))).toEqual(new Set([1, 2]));
  });

  it('gives back the sessions of a worker that died, so the address gets its whole cap again', async () => {
    const from = daemon.logs.length;
    const at = { localAddress: '127.0.0.4' };
    const held: RawSmtp[] = [];
    for (let i = 0; i < MAX; i++) {
      const c = await RawSmtp.connect(daemon.ports.submission, at);
      await c.login('app', 'pw');
      held.push(c);
    }
    expect(workersOf(linesSince(from, 'authenticated'))).toEqual(new Set([1, 2]));
    const started = daemon.logs.filter((l) => l.msg === 'worker started' && l['worker'] === 1).at(-1)!;
    process.kill(Number(started['pid']), 'SIGKILL');
    await until('worker 1 restarted', () =>
      linesSince(from, 'worker started').some((l) => l['worker'] === 1),
    );
    for (const c of held) c.close();
    const again: RawSmtp[] = [];
    await until(`${MAX} sessions admitted again`, async () => {
      const c = await RawSmtp.connect(daemon.ports.submission, at).catch(() => null);
      if (c) again.push(c);
      return again.length === MAX;
    });
    expect(await firstLine(daemon.ports.submission, '127.0.0.4')).toMatch(/^421 4\.7\.0/);
    for (const c of again) c.close();
  }, 30_000);
});
