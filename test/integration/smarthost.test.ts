import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from '../helpers/daemon.js';
import { routesTo } from '../helpers/routed.js';
import { RawSmtp } from '../helpers/smtp-client.js';

describe('static routes', () => {
  let relay: SMTPServer;
  let relayPort = 0;
  const logins: string[] = [];
  const relayed: { from: string; to: string[]; user: unknown; secure: boolean }[] = [];
  let t: TestDir;
  let daemon: Daemon;

  beforeAll(async () => {
    // A smarthost that insists on AUTH (after STARTTLS, as smtp-server requires).
    relay = new SMTPServer({
      disableReverseLookup: true,
      logger: false,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _session, cb) {
        logins.push(`${auth.username}:${auth.password}`);
        if (auth.username === 'petrel' && auth.password === 'relay secret')
          return cb(null, { user: 'petrel' });
        cb(Object.assign(new Error('5.7.8 bad credentials'), { responseCode: 535 }));
      },
      onData(stream, session, cb) {
        stream.resume();
        stream.on('end', () => {
          relayed.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            user: session.user,
            secure: session.secure,
          });
          cb(null, 'relayed');
        });
      },
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    relayPort = (relay.server.address() as AddressInfo).port;
    t = makeTestDir();
    const passwordFile = join(t.dir, 'relay-password');
    writeFileSync(passwordFile, 'relay secret\n', { mode: 0o600 });
    writeFileSync(
      t.configPath,
      `${readFileSync(t.configPath, 'utf8')}
[delivery]
poll_interval = "200ms"

${routesTo(relayPort, 'partner.test')}auth_user = "petrel"
auth_password_file = ${JSON.stringify(passwordFile)}
`,
    );
    addUser(t, 'app', ['example.com'], 'pw');
    daemon = await startDaemon(t);
  });

  afterAll(async () => {
    await daemon?.stop();
    await new Promise<void>((r) => relay.close(() => r()));
    t?.cleanup();
  });

  it('relays a routed domain to its smarthost, authenticating over TLS', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    await c.command('RCPT TO:<someone@partner.test>');
    expect((await c.data('From: sender@example.com\r\nSubject: via relay\r\n\r\nhi\r\n')).code).toBe(250);
    c.close();
    const deadline = Date.now() + 10_000;
    while (relayed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(relayed).toEqual([
      {
        from: expect.stringMatching(/^b-.+@bounces\.localhost$/),
        to: ['someone@partner.test'],
        user: 'petrel',
        secure: true,
      },
    ]);
    expect(logins).toEqual(['petrel:relay secret']);
    expect(daemon.stdoutText()).not.toContain('relay secret');
  });
});
