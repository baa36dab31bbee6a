import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

async function submit(c: RawSmtp): Promise<number> {
  expect((await c.command('MAIL FROM:<a@example.com>')).code).toBe(250);
  expect((await c.command('RCPT TO:<b@dest.test>')).code).toBe(250);
  return (await c.data('From: a@example.com\r\nSubject: reload\r\n\r\nhi\r\n')).code;
}

describe('SIGHUP reload', () => {
  let t: TestDir;
  let daemon: Daemon;
  let base: string;

  beforeAll(async () => {
    t = makeTestDir('\n[dkim]\nrequire = false\n');
    base = readFileSync(t.configPath, 'utf8');
    addUser(t, 'app', ['example.com'], 'pw');
    daemon = await startDaemon(t);
  });

  afterAll(async () => {
    await daemon?.stop();
    t?.cleanup();
  });

  it('applies a changed policy to sessions opened before the signal, without dropping them', async () => {
    const open = await RawSmtp.connect(daemon.ports.submission);
    await open.login('app', 'pw');
    expect(await submit(open)).toBe(250);
    writeFileSync(t.configPath, base.replace('require = false', 'require = true'));
    daemon.child.kill('SIGHUP');
    await until('the reload', () => daemon.logs.some((l) => l.msg === 'configuration reloaded'));
    expect(open.closed).toBe(false);
    expect(await submit(open)).toBe(550);
    open.close();
  });

  it('refuses a bad new configuration with a log line and keeps running on the old one', async () => {
    writeFileSync(
      t.configPath,
      `${base.replace('require = false', 'require = true')}\n[submission]\nbogus_key = 1\n`,
    );
    daemon.child.kill('SIGHUP');
    await until('the refusal', () =>
      daemon.logs.some((l) => l.msg === 'config reload refused; keeping the running configuration'),
    );
    expect(daemon.child.exitCode).toBeNull();
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('app', 'pw');
    // Still the last good configuration: signing required.
    expect(await submit(c)).toBe(550);
    c.close();
  });
});
