import type { Command } from 'commander';
import {
  formatRateLimit,
  generatePassword,
  hashPassword,
  normalizeDomain,
  parseRateLimit,
  utcDayStart,
  type RateLimit,
} from '../../shared/index.js';
import type { Account, AccountLimits, AccountLimitsChange } from '../../spool/index.js';
import { CliError, configFor, globals, print, readStdin, withSpool } from '../context.js';

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

const RATE_HELP =
  'most recipients accepted per second, minute or hour ("100/s", "600/min", "5000/h"), in a fixed window of ' +
  'that unit (600/min may come in one burst), for the whole node (every node, with [cluster] redis); ' +
  '"unlimited" to remove';
const DAILY_HELP =
  'most recipients accepted per UTC day, counted at each RCPT TO accepted (a restart keeps the count of the ' +
  'recipients whose message was queued); "none" to remove';

function checkRate(text: string): RateLimit | null {
  if (text === 'unlimited') return null;
  const rate = parseRateLimit(text);
  if (!rate || rate.count === 0)
    throw new CliError(
      `invalid --rate "${text}": use a positive count per s, min or h ("100/s", "600/min", "5000/h") or "unlimited"`,
      2,
    );
  return rate;
}

function checkDaily(text: string): number | null {
  if (text === 'none') return null;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 2_147_483_647)
    throw new CliError(
      `invalid --daily "${text}": use a whole number of recipients per day from 1, or "none" to remove the quota`,
      2,
    );
  return n;
}

const EGRESS_HELP =
  'the [[egress]] source its mail goes out from, over the destination\'s ([delivery] egress); "none" to remove';

function checkEgress(text: string, cmd: Command): string | null {
  if (text === 'none') return null;
  const names = configFor(cmd).egress.map((e) => e.name);
  if (!names.includes(text))
    throw new CliError(
      `invalid --egress "${text}": no [[egress]] of that name in the config (${names.length > 0 ? `there are: ${names.join(', ')}` : 'it has none'})`,
      2,
    );
  return text;
}

/** The limits named on the command line; absent options are absent from the change. */
function limitsChange(
  opts: { rate?: string; daily?: string; egress?: string },
  cmd: Command,
): AccountLimitsChange {
  return {
    ...(opts.rate !== undefined ? { rate: checkRate(opts.rate) } : {}),
    ...(opts.daily !== undefined ? { dailyQuota: checkDaily(opts.daily) } : {}),
    ...(opts.egress !== undefined ? { egress: checkEgress(opts.egress, cmd) } : {}),
  };
}

const rateText = (l: AccountLimits): string => (l.rate ? formatRateLimit(l.rate) : 'unlimited');
const dailyText = (l: AccountLimits): string => (l.dailyQuota === null ? 'none' : String(l.dailyQuota));

const limitsJson = (
  l: AccountLimits,
): { rate: string | null; dailyQuota: number | null; egress: string | null } => ({
  rate: l.rate ? formatRateLimit(l.rate) : null,
  dailyQuota: l.dailyQuota,
  egress: l.egress,
});

function accountJson(a: Account): Record<string, unknown> {
  return {
    name: a.name,
    allowedDomains: a.allowedDomains,
    stream: a.defaultStream,
    ...limitsJson(a.limits),
    createdAt: new Date(a.createdAt).toISOString(),
  };
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
    .option('--rate <rate>', `${RATE_HELP} (default: unlimited)`)
    .option('--daily <count>', `${DAILY_HELP} (default: none)`)
    .option('--egress <source>', `${EGRESS_HELP} (default: none)`)
    .action(
      async (
        name: string,
        opts: { allowFrom: string[]; stream: string; rate?: string; daily?: string; egress?: string },
        cmd: Command,
      ) => {
        checkName(name);
        if (opts.stream !== 'transactional' && opts.stream !== 'marketing')
          throw new CliError('--stream is transactional or marketing', 2);
        const stream: 'transactional' | 'marketing' = opts.stream;
        const domains = checkDomains(opts.allowFrom);
        const limits: AccountLimits = {
          rate: null,
          dailyQuota: null,
          egress: null,
          ...limitsChange(opts, cmd),
        };
        const { password, generated } = await passwordFromInput();
        const hash = await hashPassword(password);
        await withSpool(cmd, async (spool) => {
          await spool.accounts.add(name, hash, domains, stream, limits);
        });
        if (globals(cmd).json)
          print(
            JSON.stringify({
              name,
              allowedDomains: domains,
              ...limitsJson(limits),
              ...(generated ? { password } : {}),
            }),
          );
        else {
          print(`account ${name} created, may send from: ${domains.join(', ')}`);
          if (limits.rate || limits.dailyQuota !== null)
            print(`rate: ${rateText(limits)}, daily quota: ${dailyText(limits)}`);
          if (generated) print(`password: ${password}`);
        }
      },
    );

  user
    .command('set <name>')
    .description(
      'change the limits of an account; options left out keep their value. A running daemon applies them from the next MAIL FROM',
    )
    .option('--rate <rate>', RATE_HELP)
    .option('--daily <count>', DAILY_HELP)
    .option('--egress <source>', EGRESS_HELP)
    .action(async (name: string, opts: { rate?: string; daily?: string; egress?: string }, cmd: Command) => {
      const change = limitsChange(opts, cmd);
      if (Object.keys(change).length === 0)
        throw new CliError('nothing to change: give --rate, --daily or --egress', 2);
      const account = await withSpool(cmd, (spool) => spool.accounts.setLimits(name, change));
      if (globals(cmd).json) print(JSON.stringify(accountJson(account)));
      else
        print(
          `account ${name}: rate ${rateText(account.limits)}, daily quota ${dailyText(account.limits)}, egress ${account.limits.egress ?? 'none'}`,
        );
    });

  user
    .command('show <name>')
    .description('an account: its sender domains, stream, limits, and the recipients it queued today (UTC)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const found = await withSpool(cmd, async (spool) => {
        const account = await spool.accounts.get(name);
        if (!account) return null;
        const today = await spool.accounts.recipientsQueuedSince(account.id, utcDayStart(Date.now()));
        return { account, today };
      });
      if (!found) throw new CliError(`no account named ${name}`);
      const { account: a, today } = found;
      if (globals(cmd).json) {
        print(JSON.stringify({ ...accountJson(a), queuedToday: today }));
        return;
      }
      print(`name:         ${a.name}`);
      print(`allowed from: ${a.allowedDomains.join(', ')}`);
      print(`stream:       ${a.defaultStream}`);
      print(`rate:         ${rateText(a.limits)}`);
      print(`daily quota:  ${dailyText(a.limits)}`);
      print(`egress:       ${a.limits.egress ?? 'none'}`);
      print(`queued today: ${today} recipients`);
      print(`created:      ${new Date(a.createdAt).toISOString()}`);
    });

  user
    .command('list')
    .description('list accounts')
    .action(async (_opts: unknown, cmd: Command) => {
      const accounts = await withSpool(cmd, (spool) => spool.accounts.list());
      if (globals(cmd).json) {
        for (const a of accounts) print(JSON.stringify(accountJson(a)));
        return;
      }
      if (accounts.length === 0) print('no accounts');
      for (const a of accounts)
        print(
          `${a.name}\t${a.allowedDomains.join(',')}\trate ${rateText(a.limits)}\tdaily ${dailyText(a.limits)}`,
        );
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
