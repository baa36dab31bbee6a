import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSpool, type Spool } from '../../src/spool/index.js';
import { addUser, cli, type Daemon, type TestDir } from '../helpers/daemon.js';
import { startRoutedDaemon, type Routed } from '../helpers/routed.js';
import type { ReceivedMessage, Sink } from '../helpers/sink.js';
import { arfFor, dsnFor } from '../helpers/reports.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

describe('bounces, complaints and unsubscribes suppress through the whole pipeline', () => {
  let sink: Sink;
  let t: TestDir;
  let daemon: Daemon;
  let spool: Spool;

  const send = async (
    to: string,
    subject: string,
    headers: string[] = [],
  ): Promise<{ code: number; text: string; rcpt: number }> => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('app', 'pw');
    await c.command('MAIL FROM:<sender@example.com>');
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) {
      c.close();
      return { code: rcpt.code, text: rcpt.text, rcpt: rcpt.code };
    }
    const r = await c.data(
      [`From: sender@example.com`, `To: ${to}`, `Subject: ${subject}`, ...headers, '', 'hello', ''].join(
        '\r\n',
      ),
    );
    c.close();
    return { code: r.code, text: r.text, rcpt: rcpt.code };
  };

  const delivered = (subject: string): Promise<ReceivedMessage> =>
    until(() => sink.messages.find((m) => m.body.includes(`Subject: ${subject}\r\n`)));

  const report = async (rcptTo: string, message: string): Promise<number> => {
    const c = await RawSmtp.connect(daemon.ports.inbound!);
    await c.command('EHLO mx.dest.test');
    await c.command('MAIL FROM:<>');
    const rcpt = await c.command(`RCPT TO:<${rcptTo}>`);
    if (rcpt.code !== 250) {
      c.close();
      return rcpt.code;
    }
    const r = await c.data(message);
    c.close();
    return r.code;
  };

  let routed: Routed | undefined;
  beforeAll(async () => {
    routed = await startRoutedDaemon({
      domains: ['dest.test', 'example.com'],
      toml: '[delivery]\npoll_interval = "200ms"\n',
      sink: {
        rcpt: (a) => {
          if (a.startsWith('gone@')) return { code: 550, text: '5.1.1 <gone@dest.test>: No such user here' };
          // Some servers quote the local part alone.
          if (a.startsWith('Ida.Quoted@')) return { code: 550, text: '5.1.1 <ida.quoted>... User unknown' };
          return undefined;
        },
      },
      prepare: (dir) => void addUser(dir, 'other', ['other.example'], 'pw2'),
    });
    ({ t, sink, daemon } = routed);
    spool = openSpool(t.dataDir);
  });

  afterAll(async () => {
    await spool?.close();
    await routed?.stop();
  });

  it('suppresses a hard-bounced address for the account when a DSN comes back to its VERP address', async () => {
    expect((await send('bob@dest.test', 'to bob')).code).toBe(250);
    const msg = await delivered('to bob');
    expect(msg.mailFrom).toMatch(/^b-.+@bounces\.localhost$/);
    expect(await report(msg.mailFrom, dsnFor('bob@dest.test', msg.mailFrom))).toBe(250);
    const again = await until(async () => {
      const r = await send('bob@dest.test', 'bob again');
      return r.rcpt === 550 && r;
    });
    expect(again.text).toMatch(/^550 5\.7\.1 Recipient is suppressed \(hard:userunknown\)/);
    const list = JSON.parse(
      cli(t, ['suppression', 'list', '--json']).stdout.trim().split('\n')[0]!,
    ) as Record<string, unknown>;
    expect(list).toMatchObject({
      address: 'bob@dest.test',
      account: 'app',
      reason: 'hard:userunknown',
      source: 'dsn',
    });
  });

  it('ignores forged reports: a bad token is refused, and a valid token naming someone else changes nothing', async () => {
    expect((await send('carol@dest.test', 'to carol')).code).toBe(250);
    const msg = await delivered('to carol');
    const forgedToken = msg.mailFrom.replace(
      /[0-9a-f]{4}@/,
      (m) => `${m[0] === 'a' ? 'b' : 'a'}${m.slice(1)}`,
    );
    expect(await report(forgedToken, dsnFor('victim@dest.test', forgedToken))).toBe(550);
    expect(await report('anyone@bounces.localhost', dsnFor('victim@dest.test', 'x'))).toBe(550);
    expect(await report('victim@elsewhere.test', dsnFor('victim@dest.test', 'x'))).toBe(550);
    // A DSN for victim@ sent to carol's genuine return path must not suppress victim (nor carol).
    expect(await report(msg.mailFrom, dsnFor('victim@dest.test', msg.mailFrom))).toBe(250);
    expect((await send('victim@dest.test', 'to victim')).rcpt).toBe(250);
    expect((await send('carol@dest.test', 'carol again')).rcpt).toBe(250);
  });

  it('suppresses an address after an ARF complaint that carries its return path', async () => {
    expect((await send('ellen@dest.test', 'to ellen')).code).toBe(250);
    const msg = await delivered('to ellen');
    expect(await report('fbl@bounces.localhost', arfFor('ellen@dest.test', msg.mailFrom))).toBe(250);
    const r = await until(async () => {
      const x = await send('ellen@dest.test', 'ellen again');
      return x.rcpt === 550 && x;
    });
    expect(r.text).toMatch(/suppressed \(complaint:abuse\)/);
  });

  it('keeps suppression per account: another account may still mail a suppressed address', async () => {
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('other', 'pw2');
    await c.command('MAIL FROM:<news@other.example>');
    expect((await c.command('RCPT TO:<bob@dest.test>')).code).toBe(250);
    c.close();
  });

  it('adds List-Unsubscribe to marketing mail; a one-click POST stops marketing but not transactional mail', async () => {
    expect((await send('frank@dest.test', 'promo 1', ['X-Petrel-Stream: marketing'])).code).toBe(250);
    const msg = await delivered('promo 1');
    const text = msg.body.toString();
    expect(text).not.toMatch(/X-Petrel-Stream/i);
    expect(text).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
    const url =
      /^List-Unsubscribe: <(http:\/\/127\.0\.0\.1:8025\/u\/[A-Za-z0-9_-]+)>,\r\n <mailto:unsub-[A-Za-z0-9_-]+@bounces\.localhost\?subject=unsubscribe>/m.exec(
        text,
      )?.[1];
    expect(url).toBeDefined();
    const local = url!.replace('127.0.0.1:8025', `127.0.0.1:${daemon.ports.http!}`);
    const page = await fetch(local);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form method="post">');
    const head = await fetch(local, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await head.text()).toBe('');
    // Neither GET (a link scanner) nor a POST without the RFC 8058 body unsubscribes anybody;
    // such a POST gets the confirmation page.
    for (const body of [undefined, '', 'List-Unsubscribe=Later', 'confirm=1']) {
      const bare = await fetch(local, {
        method: 'POST',
        ...(body === undefined
          ? {}
          : { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      });
      expect(bare.status).toBe(200);
      expect(await bare.text()).toContain('<form method="post">');
    }
    expect(await spool.suppressions.list({})).not.toContainEqual(
      expect.objectContaining({ address: 'frank@dest.test' }),
    );
    expect((await send('frank@dest.test', 'promo 2', ['X-Petrel-Stream: marketing'])).code).toBe(250);
    await delivered('promo 2');
    const post = await fetch(local, {
      method: 'POST',
      body: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.status).toBe(200);
    const refused = await send('frank@dest.test', 'promo 3', ['X-Petrel-Stream: marketing']);
    expect(refused.code).toBe(550);
    expect(refused.text).toMatch(/5\.7\.1 .*\(unsubscribe\)/);
    expect((await send('frank@dest.test', 'receipt', [])).code).toBe(250);
    await delivered('receipt');
    expect((await fetch(local.replace(/\/u\/.+$/, '/u/AAAAAAAAAAAAAAAAAAAAAAAA'))).status).toBe(404);
  });

  it('takes the one-click body as multipart/form-data too', async () => {
    expect((await send('hana@dest.test', 'promo multipart', ['X-Petrel-Stream: marketing'])).code).toBe(250);
    const text = (await delivered('promo multipart')).body.toString();
    const url = /^List-Unsubscribe: <http:\/\/127\.0\.0\.1:8025(\/u\/[A-Za-z0-9_-]+)>/m.exec(text)![1]!;
    const form = new FormData();
    form.append('List-Unsubscribe', 'One-Click');
    const post = await fetch(`http://127.0.0.1:${daemon.ports.http!}${url}`, { method: 'POST', body: form });
    expect(post.status).toBe(200);
    expect(await post.text()).toContain('You are unsubscribed');
    expect((await send('hana@dest.test', 'promo multipart 2', ['X-Petrel-Stream: marketing'])).code).toBe(
      550,
    );
  });

  it('refuses an unsubscribed address at RCPT for an account whose mail is marketing', async () => {
    expect(
      cli(t, ['user', 'add', 'promo', '--allow-from', 'example.com', '--stream', 'marketing'], 'pw3\n')
        .status,
    ).toBe(0);
    expect(
      cli(t, [
        'suppression',
        'add',
        'gina@dest.test',
        '--account',
        'promo',
        '--reason',
        'unsubscribe',
        '--scope',
        'marketing',
      ]).status,
    ).toBe(0);
    const c = await RawSmtp.connect(daemon.ports.submission);
    await c.login('promo', 'pw3');
    await c.command('MAIL FROM:<deals@example.com>');
    const r = await c.command('RCPT TO:<gina@dest.test>');
    c.close();
    expect(r.code).toBe(550);
    expect(r.text).toContain('(unsubscribe)');
  });

  it('suppresses on a synchronous 5.1.1 at RCPT during delivery, with one DSN to the sender', async () => {
    const first = await send('gone@dest.test', 'to gone');
    expect(first.code).toBe(250);
    const id = /queued as (\S+)/.exec(first.text)![1]!;
    await until(() => sink.messages.find((m) => m.mailFrom === '' && m.body.includes(id)));
    const r = await until(async () => {
      const x = await send('gone@dest.test', 'gone again');
      return x.rcpt === 550 && x;
    });
    expect(r.text).toMatch(/suppressed \(hard:userunknown\)/);
  });

  it("logs a reply that quotes a recipient's local part alone with that local part masked", async () => {
    const r = await send('Ida.Quoted@dest.test', 'to ida');
    expect(r.code).toBe(250);
    const id = /queued as (\S+)/.exec(r.text)![1]!;
    const line = await until(() => daemon.logs.find((l) => l['event'] === 'bounce' && l['msgId'] === id));
    expect((line['reply'] as { text: string }).text).toBe('<[address]>... User unknown');
    expect(daemon.stdoutText().toLowerCase()).not.toContain('ida.quoted');
  });
});
