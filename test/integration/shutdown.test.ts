import { afterAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { addUser, makeTestDir, startDaemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

async function inData(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port);
  await c.login('app', 'pw');
  await c.command('MAIL FROM:<a@example.com>');
  await c.command('RCPT TO:<b@dest.test>');
  expect((await c.command('DATA')).code).toBe(354);
  return c;
}

describe('shutdown', () => {
  const dirs: TestDir[] = [];
  afterAll(() => dirs.forEach((d) => d.cleanup()));

  it('on SIGTERM lets DATA in progress finish, gives 421 to idle and stalled sessions, and exits 0', async () => {
    const t = makeTestDir('', 'close_timeout = "1500ms"');
    dirs.push(t);
    addUser(t, 'app', ['example.com'], 'pw');
    const daemon = await startDaemon(t);
    const finishing = await inData(daemon.ports.submission);
    const stalled = await inData(daemon.ports.submission);
    const idle = await RawSmtp.connect(daemon.ports.submission);
    await idle.login('app', 'pw');
    finishing.write('From: a@example.com\r\nSubject: finished after the signal\r\n\r\n');
    stalled.write('From: a@example.com\r\nSubject: never finished\r\n\r\npartial');

    const started = Date.now();
    daemon.child.kill('SIGTERM');
    // Logged just before the listeners close, in the same turn of the daemon's event loop.
    await until('the shutdown line', () => daemon.logs.some((l) => l.msg === 'shutting down'));
    expect((await idle.command('MAIL FROM:<a@example.com>')).code).toBe(421);
    finishing.write('ok\r\n.\r\n');
    const done = await finishing.read();
    expect(done.code).toBe(250);
    expect((await stalled.read()).code).toBe(421);
    expect(await daemon.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);

    const spool = openSpool(t.dataDir);
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    expect((await spool.messages.get(id))?.body.toString()).toContain('finished after the signal');
    expect(await spool.messages.count()).toBe(1);
    await spool.close();
  });
});
