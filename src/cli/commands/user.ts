import type { Command } from 'commander';
import { generatePassword, hashPassword, normalizeDomain } from '../../shared/index.js';
import { CliError, globals, print, readStdin, withSpool } from '../context.js';

// No @: a name shaped like an address would be personal data wherever the name is shown.
const NAME = /^[A-Za-z0-9._+-]{1,64}$/;

function checkName(name: string): void {
  if (!NAME.test(name))
    throw new CliError(`invalid account name "${name}": use letters, digits and . _ + - (no @)`, 2);
}

function checkDomains(domains: readonly string[]): string[] {
  return domains.map((d) => {
    const wildcard = d.startsWith('*.');
    const norm = normalizeDomain(wildcard ? d.slice(2) : d);
    if (!norm) throw new CliError(`invalid domain "${d}"`, 2);
    return wildcard ? `*.${norm}` : norm;
  });
}

/** The password piped on stdin, or a generated one that is printed once. */
async function passwordFromInput(): Promise<{ password: string; generated: boolean }> {
  const piped = (await readStdin())?.replace(/\r?\n$/, '');
  if (piped) return { password: piped, generated: false };
  return { password: generatePassword(), generated: true };
}

export function register(program: Command): void {
  const user = program.command('user').description('sending accounts (SMTP AUTH)');

  user
    .command('add <name>')
    .description('create an account; the password is read from stdin, or generated and printed once')
    .requiredOption(
      '--allow-from <domains...>',
      'sender domains the account may use (*.example.com for subdomains)',
    )
    .option(
      '--stream <stream>',
      'transactional or marketing: the stream of its mail unless X-Petrel-Stream says',
      'transactional',
    )
    .action(async (name: string, opts: { allowFrom: string[]; stream: string }, cmd: Command) => {
      checkName(name);
      if (opts.stream !== 'transactional' && opts.stream !== 'marketing')
        throw new CliError('--stream is transactional or marketing', 2);
      const stream: 'transactional' | 'marketing' = opts.stream;
      const domains = checkDomains(opts.allowFrom);
      const { password, generated } = await passwordFromInput();
      const hash = await hashPassword(password);
      await withSpool(cmd, async (spool) => {
        await spool.accounts.add(name, hash, domains, stream);
      });
      if (globals(cmd).json)
        print(JSON.stringify({ name, allowedDomains: domains, ...(generated ? { password } : {}) }));
      else {
        print(`account ${name} created, may send from: ${domains.join(', ')}`);
        if (generated) print(`password: ${password}`);
      }
    });

  user
    .command('list')
    .description('list accounts')
    .action(async (_opts: unknown, cmd: Command) => {
      const accounts = await withSpool(cmd, (spool) => spool.accounts.list());
      if (globals(cmd).json) {
        for (const a of accounts) {
          print(
            JSON.stringify({
              name: a.name,
              allowedDomains: a.allowedDomains,
              createdAt: new Date(a.createdAt).toISOString(),
            }),
          );
        }
        return;
      }
      if (accounts.length === 0) print('no accounts');
      for (const a of accounts) print(`${a.name}\t${a.allowedDomains.join(',')}`);
    });

  user
    .command('remove <name>')
    .description('delete an account; its sessions can no longer send')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const removed = await withSpool(cmd, (spool) => spool.accounts.remove(name));
      if (!removed) throw new CliError(`no account named ${name}`);
      print(`account ${name} removed`);
    });

  user
    .command('passwd <name>')
    .description('set a new password, read from stdin or generated and printed once')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const { password, generated } = await passwordFromInput();
      const hash = await hashPassword(password);
      await withSpool(cmd, (spool) => spool.accounts.setPassword(name, hash));
      print(`password of ${name} changed`);
      if (generated) print(`password: ${password}`);
    });

  user
    .command('resume <name>')
    .description("lift the guard's pause of an account's marketing mail; its rates count afresh from now")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const done = await withSpool(cmd, async (spool) => {
        const account = (await spool.accounts.list()).find((a) => a.name === name);
        if (!account) throw new CliError(`no account named ${name}`);
        return spool.guard.resume(account.id);
      });
      if (!done) throw new CliError(`marketing mail of ${name} is not paused`);
      print(`marketing mail of ${name} resumed`);
    });
}
