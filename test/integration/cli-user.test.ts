import { afterAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { hashPassword, verifyPassword } from '../../src/shared/index.js';
import { cli, makeTestDir, startDaemon } from '../helpers/daemon.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import { until } from '../helpers/until.js';

describe('petrel user', () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it('adds an account with a piped password, stored only as an scrypt hash', async () => {
    const r = cli(
      t,
      ['user', 'add', 'shop', '--allow-from', 'Shop.Example', '*.mail.example'],
      's3cret pass\n',
    );
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain('s3cret');
    const spool = openSpool(t.dataDir);
    const account = await spool.accounts.get('shop');
    await spool.close();
    expect(account?.allowedDomains).toEqual(['shop.example', '*.mail.example']);
    expect(account?.passwordHash).toMatch(/^scrypt\$/);
    expect(await verifyPassword('s3cret pass', account!.passwordHash)).toBe(true);
  });

  it('generates and prints a password once when none is piped', () => {
    const r = cli(t, ['--json', 'user', 'add', 'gen', '--allow-from', 'gen.example']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { password: string };
    expect(out.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
  });

  it('lists, changes passwords and removes accounts, with clear errors', async () => {
    expect(cli(t, ['user', 'add', 'shop', '--allow-from', 'x.example'], 'p\n')).toMatchObject({ status: 1 });
    expect(cli(t, ['user', 'add', 'bad name', '--allow-from', 'x.example'], 'p\n').status).toBe(2);
    // A name shaped like an address would be personal data wherever the name is shown.
    const at = cli(t, ['user', 'add', 'jane@shop.example', '--allow-from', 'x.example'], 'p\n');
    expect(at.status).toBe(2);
    expect(at.stderr).toBe(
      'petrel: invalid account name "jane@shop.example": use letters, digits and . _ + - (no @)\n',
    );
    expect(cli(t, ['user', 'add', 'nodomain', '--allow-from', 'not a domain'], 'p\n').stderr).toMatch(
      /invalid domain/,
    );
    const list = cli(t, ['user', 'list', '--json']);
    expect(
      list.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { name: string }).name),
    ).toEqual(['gen', 'shop']);
    expect(cli(t, ['user', 'passwd', 'shop'], 'new pass\n').status).toBe(0);
    const spool = openSpool(t.dataDir);
    expect(await verifyPassword('new pass', (await spool.accounts.get('shop'))!.passwordHash)).toBe(true);
    await spool.close();
    expect(cli(t, ['user', 'passwd', 'ghost'], 'x\n')).toMatchObject({ status: 1 });
    expect(cli(t, ['user', 'remove', 'shop']).status).toBe(0);
    const again = cli(t, ['user', 'remove', 'shop']);
    expect(again.status).toBe(1);
    expect(again.stderr).toBe('petrel: no account named shop\n');
  });
});

describe('an account named like an address, made before @ was refused', () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it('still authenticates and sends, and the log names it by id, never by its name', async () => {
    const spool = openSpool(t.dataDir);
    const account = await spool.accounts.add('jane@shop.example', await hashPassword('pw'), ['shop.example']);
    await spool.close();
    const daemon = await startDaemon(t);
    try {
      const c = await RawSmtp.connect(daemon.ports.submission);
      await c.login('jane@shop.example', 'pw');
      await c.command('MAIL FROM:<jane@shop.example>');
      await c.command('RCPT TO:<one@dest.test>');
      expect((await c.data('From: jane@shop.example\r\nSubject: hi\r\n\r\nhello\r\n')).code).toBe(250);
      c.close();
      const reception = await until('the reception line', () =>
        daemon.logs.find((l) => l['event'] === 'reception'),
      );
      expect(reception['accountId']).toBe(account.id);
      expect(daemon.logs.find((l) => l.msg === 'authenticated')?.['accountId']).toBe(account.id);
      expect(daemon.stdoutText()).not.toContain('jane@shop.example');
    } finally {
      await daemon.stop();
    }
  });
});

describe('petrel backup', () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it('writes a consistent, owner-only copy that opens as a spool with the same accounts', async () => {
    expect(cli(t, ['user', 'add', 'kept', '--allow-from', 'kept.example'], 'pw\n').status).toBe(0);
    const file = `${t.dir}/copy.db`;
    expect(cli(t, ['backup', file]).status).toBe(0);
    expect(cli(t, ['backup', file]).status).toBe(1);
    const { statSync, mkdirSync, copyFileSync } = await import('node:fs');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const restored = `${t.dir}/restored`;
    mkdirSync(restored);
    copyFileSync(file, `${restored}/petrel.db`);
    const spool = openSpool(restored);
    expect((await spool.accounts.list()).map((a) => a.name)).toEqual(['kept']);
    await spool.close();
  });
});
