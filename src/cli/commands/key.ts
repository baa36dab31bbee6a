import type { Command } from 'commander';
import { parseCidr, parseDuration } from '../../config/index.js';
import { KEY_SCOPES, type ApiKey, type KeyScope } from '../../spool/index.js';
import { CliError, globals, print, withSpool } from '../context.js';

function scopesOf(text: string | undefined, admin: boolean): KeyScope[] {
  if (text === undefined) return admin ? ['send', 'admin'] : ['send'];
  const asked = text
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const bad = asked.filter((s) => !(KEY_SCOPES as readonly string[]).includes(s));
  if (bad.length > 0 || asked.length === 0)
    throw new CliError(
      `invalid --scope "${text}": use a comma-separated list of ${KEY_SCOPES.join(', ')}`,
      2,
    );
  if (asked.includes('admin') && !admin)
    throw new CliError('the admin scope is for operator keys: petrel key add --admin', 2);
  // Stored in one order, so that two keys with the same scopes read the same.
  return KEY_SCOPES.filter((s) => asked.includes(s));
}

function networksOf(list: readonly string[]): string[] {
  for (const n of list)
    if (!parseCidr(n)) throw new CliError(`invalid --from "${n}": give an address or a CIDR block`, 2);
  return list.map((n) => n.trim());
}

const when = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

function keyJson(k: ApiKey): Record<string, unknown> {
  return {
    id: k.id,
    account: k.accountName,
    name: k.name,
    scopes: k.scopes,
    networks: k.networks,
    createdAt: when(k.createdAt),
    expiresAt: k.expiresAt === null ? null : when(k.expiresAt),
    lastUsedAt: k.lastUsedAt === null ? null : when(k.lastUsedAt),
    revokedAt: k.revokedAt === null ? null : when(k.revokedAt),
  };
}

export function register(program: Command): void {
  const key = program.command('key').description('HTTP API keys');

  key
    .command('add')
    .description(
      'create an API key for an account (or an operator key with --admin); the token is printed once',
    )
    .argument('[account]', 'the account the key sends and reads as')
    .option('--admin', 'an operator key: acts for any account and may run the node')
    .option(
      '--scope <list>',
      `comma-separated: ${KEY_SCOPES.join(', ')} (default send; with --admin, send,admin)`,
    )
    .option('--name <text>', 'what the key is for, shown by key list')
    .option('--expires <duration>', 'the key stops working after this long (90d, 12h)')
    .option('--from <cidr...>', 'client addresses or networks the key is good from (default: anywhere)')
    .action(
      async (
        account: string | undefined,
        opts: { admin?: boolean; scope?: string; name?: string; expires?: string; from?: string[] },
        cmd: Command,
      ) => {
        const admin = opts.admin === true;
        if (admin === (account !== undefined))
          throw new CliError('name an account, or give --admin for an operator key (not both)', 2);
        const scopes = scopesOf(opts.scope, admin);
        const networks = networksOf(opts.from ?? []);
        let ttl: number | null = null;
        if (opts.expires !== undefined) {
          ttl = parseDuration(opts.expires);
          if (!ttl)
            throw new CliError(`invalid --expires "${opts.expires}": use a duration such as 90d or 12h`, 2);
        }
        const now = Date.now();
        const made = await withSpool(cmd, async (spool) => {
          let accountId: number | null = null;
          if (account !== undefined) {
            const a = await spool.accounts.get(account);
            if (!a) throw new CliError(`no account named ${account}`);
            accountId = a.id;
          }
          return spool.keys.create(
            {
              accountId,
              name: opts.name ?? null,
              scopes,
              networks,
              expiresAt: ttl === null ? null : now + ttl,
            },
            now,
          );
        });
        if (globals(cmd).json) {
          print(JSON.stringify({ ...keyJson(made.key), token: made.token }));
          return;
        }
        print(made.token);
        process.stderr.write(
          `key ${made.key.id} for ${made.key.accountName ?? 'the operator'} (${scopes.join(',')}): the token above is shown only now\n`,
        );
      },
    );

  key
    .command('list')
    .description(
      "API keys (never their secrets): every key, one account's, or with --admin the operator keys",
    )
    .argument('[account]')
    .option('--admin', 'only operator keys')
    .action(async (account: string | undefined, opts: { admin?: boolean }, cmd: Command) => {
      const keys = await withSpool(cmd, async (spool) => {
        if (opts.admin) return spool.keys.list(null);
        if (account === undefined) return spool.keys.list();
        const a = await spool.accounts.get(account);
        if (!a) throw new CliError(`no account named ${account}`);
        return spool.keys.list(a.id);
      });
      if (globals(cmd).json) {
        for (const k of keys) print(JSON.stringify(keyJson(k)));
        return;
      }
      if (keys.length === 0) print('no API keys');
      const now = Date.now();
      for (const k of keys) {
        const state =
          k.revokedAt !== null
            ? 'revoked'
            : k.expiresAt !== null && k.expiresAt <= now
              ? 'expired'
              : `expires ${k.expiresAt === null ? 'never' : when(k.expiresAt)}`;
        print(
          [
            k.id,
            k.accountName ?? '(operator)',
            k.scopes.join(','),
            k.networks.length ? `from ${k.networks.join(',')}` : 'from anywhere',
            state,
            `last used ${when(k.lastUsedAt)}`,
            k.name ?? '',
          ].join('\t'),
        );
      }
    });

  key
    .command('revoke')
    .description('revoke an API key at once, on every node')
    .argument('<id>', 'the key id (the token up to its dot, pk_…)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const keyId = id.split('.')[0]!;
      const done = await withSpool(cmd, (spool) => spool.keys.revoke(keyId, Date.now()));
      if (!done) throw new CliError(`no active key ${keyId}`);
      print(`key ${keyId} revoked`);
    });
}
