import { afterAll, describe, expect, it } from 'vitest';
import { openSpool } from '../../src/spool/index.js';
import { addUser, cli, makeTestDir } from '../helpers/daemon.js';

describe('petrel key', () => {
  const t = makeTestDir();
  addUser(t, 'shop', ['shop.example']);
  afterAll(() => t.cleanup());

  it('adds a key, prints its token once, and stores only a hash of it', async () => {
    const r = cli(t, [
      'key',
      'add',
      'shop',
      '--scope',
      'read,send',
      '--name',
      'web app',
      '--from',
      '10.1.0.0/16',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const token = r.stdout.trim();
    expect(token).toMatch(/^pk_[0-9a-f]{16}\.[A-Za-z0-9_-]{32}$/);
    expect(r.stderr).toMatch(/shown only now/);
    const spool = openSpool(t.dataDir);
    try {
      const key = await spool.keys.verify(token, Date.now());
      expect(key).toMatchObject({ accountName: 'shop', name: 'web app', scopes: ['send', 'read'] });
      expect(key?.networks).toEqual(['10.1.0.0/16']);
    } finally {
      await spool.close();
    }
    const list = cli(t, ['key', 'list', 'shop']);
    expect(list.status).toBe(0);
    expect(list.stdout).toContain(token.split('.')[0]!);
    expect(list.stdout).toContain('from 10.1.0.0/16');
    expect(list.stdout).not.toContain(token.split('.')[1]!);
    const json = cli(t, ['--json', 'key', 'list']);
    expect(json.stdout).not.toContain(token.split('.')[1]!);
    expect(JSON.parse(json.stdout.trim().split('\n')[0]!)).toMatchObject({
      account: 'shop',
      revokedAt: null,
    });
  });

  it('adds operator keys with --admin, send and admin by default, and expiring keys', () => {
    const r = cli(t, ['--json', 'key', 'add', '--admin', '--expires', '1d']);
    expect(r.status, r.stderr).toBe(0);
    const made = JSON.parse(r.stdout) as { id: string; account: null; scopes: string[]; expiresAt: string };
    expect(made.account).toBeNull();
    expect(made.scopes).toEqual(['send', 'admin']);
    const ttl = Date.parse(made.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(86_000_000);
    expect(ttl).toBeLessThanOrEqual(86_400_000);
    const admins = cli(t, ['--json', 'key', 'list', '--admin']).stdout.trim().split('\n');
    expect(admins.map((l) => (JSON.parse(l) as { id: string }).id)).toEqual([made.id]);
  });

  it('revokes a key by id or by its token, once', () => {
    const token = cli(t, ['key', 'add', 'shop']).stdout.trim();
    const id = token.split('.')[0]!;
    expect(cli(t, ['key', 'revoke', token]).stdout).toBe(`key ${id} revoked\n`);
    const again = cli(t, ['key', 'revoke', id]);
    expect(again.status).toBe(1);
    expect(again.stderr.trim()).toBe(`petrel: no active key ${id}`);
    expect(cli(t, ['key', 'list', 'shop']).stdout).toMatch(new RegExp(`${id}\\t.*\\trevoked\\t`));
  });

  it.each([
    [['key', 'add'], 2, /name an account, or give --admin/],
    [['key', 'add', 'shop', '--admin'], 2, /name an account, or give --admin/],
    [['key', 'add', 'shop', '--scope', 'send,everything'], 2, /invalid --scope "send,everything"/],
    [['key', 'add', 'shop', '--scope', 'admin'], 2, /admin scope is for operator keys/],
    [['key', 'add', 'shop', '--from', '10.0.0.0/40'], 2, /invalid --from "10.0.0.0\/40"/],
    [['key', 'add', 'shop', '--expires', 'soon'], 2, /invalid --expires "soon"/],
    [['key', 'add', 'nobody'], 1, /no account named nobody/],
    [['key', 'list', 'nobody'], 1, /no account named nobody/],
  ])('refuses %j with one line', (args, code, message) => {
    const r = cli(t, args);
    expect(r.status).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
