import { createReadStream, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { canonicalAddress } from '../../shared/index.js';
import type { Spool, SuppressionRecord, SuppressionScope } from '../../spool/index.js';
import { CliError, globals, print, withSpool } from '../context.js';

interface Opts {
  account?: string;
  global?: boolean;
}

/** The account id an --account option names (null: the global list). */
async function accountId(spool: Spool, name: string | undefined): Promise<number | null> {
  if (!name) return null;
  const a = await spool.accounts.get(name);
  if (!a) throw new CliError(`no account named ${name}`);
  return a.id;
}

function scopeOf(text: string): SuppressionScope {
  if (text !== 'all' && text !== 'marketing') throw new CliError('--scope is all or marketing', 2);
  return text;
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((f) => f.trim());
}

export function register(program: Command): void {
  const sup = program.command('suppression').description('addresses that must not be mailed');

  sup
    .command('list')
    .description('suppressed addresses (of one account, or all lists)')
    .option('--account <name>', "only this account's list")
    .option('--global', 'only the global list')
    .action(async (opts: Opts, cmd: Command) => {
      const rows = await withSpool(cmd, async (spool) => {
        const names = new Map((await spool.accounts.list()).map((a) => [a.id, a.name]));
        const filter = opts.global
          ? { accountId: null }
          : opts.account
            ? { accountId: await accountId(spool, opts.account) }
            : {};
        return (await spool.suppressions.list(filter)).map((r: SuppressionRecord) => ({
          address: r.address,
          addressHash: r.address === null ? r.addressHash : undefined,
          account: r.accountId === null ? null : (names.get(r.accountId) ?? String(r.accountId)),
          scope: r.scope,
          reason: r.reason,
          source: r.source,
          createdAt: new Date(r.createdAt).toISOString(),
        }));
      });
      if (globals(cmd).json) return rows.forEach((r) => print(JSON.stringify(r)));
      if (rows.length === 0) return print('no suppressed addresses');
      for (const r of rows) {
        print(
          `${r.address ?? `(erased) ${r.addressHash!.slice(0, 16)}…`}\t${r.account ?? 'global'}\t${r.scope}\t${r.reason}\t${r.source}\t${r.createdAt}`,
        );
      }
    });

  sup
    .command('add <address>')
    .description('suppress an address for an account (or globally)')
    .option('--account <name>', 'the account whose list it goes on (default: global)')
    .option('--reason <reason>', 'why', 'manual')
    .option('--scope <scope>', 'all (no mail) or marketing (no marketing mail)', 'all')
    .action(async (address: string, opts: Opts & { reason: string; scope: string }, cmd: Command) => {
      if (!canonicalAddress(address)) throw new CliError(`not an email address: ${address}`, 2);
      const scope = scopeOf(opts.scope);
      const added = await withSpool(cmd, async (spool) =>
        spool.suppressions.add({
          accountId: await accountId(spool, opts.account),
          address,
          scope,
          reason: opts.reason,
          source: 'cli',
        }),
      );
      print(added ? `${address} suppressed` : `${address} was already suppressed`);
    });

  sup
    .command('remove <address>')
    .description("lift a suppression (from an account's list, or the global one)")
    .option('--account <name>', 'the account whose list it is on (default: global)')
    .action(async (address: string, opts: Opts, cmd: Command) => {
      const n = await withSpool(cmd, async (spool) =>
        spool.suppressions.remove(await accountId(spool, opts.account), address),
      );
      if (n === 0) throw new CliError(`${address} is not on that list`);
      print(`${address} removed (${n} entr${n === 1 ? 'y' : 'ies'})`);
    });

  sup
    .command('import <file>')
    .description('add addresses from a CSV file: address[,reason[,scope]] per line')
    .option('--account <name>', 'the account whose list they go on (default: global)')
    .option('--reason <reason>', 'reason for lines that give none', 'import')
    .action(async (file: string, opts: Opts & { reason: string }, cmd: Command) => {
      const result = await withSpool(cmd, async (spool) => {
        const id = await accountId(spool, opts.account);
        let added = 0;
        let existing = 0;
        let lineNo = 0;
        const rejected: string[] = [];
        const input = createReadStream(file);
        input.on('error', () => undefined);
        const lines = createInterface({ input, crlfDelay: Infinity });
        try {
          for await (const line of lines) {
            lineNo++;
            if (!line.trim() || line.startsWith('#')) continue;
            const [address = '', reason = '', scope = ''] = splitCsv(line);
            if (lineNo === 1 && /^e?-?mail|^address$/i.test(address)) continue;
            if (!canonicalAddress(address) || (scope && scope !== 'all' && scope !== 'marketing')) {
              rejected.push(`line ${lineNo}: ${address || '(empty)'}`);
              continue;
            }
            const ok = await spool.suppressions.add({
              accountId: id,
              address,
              scope: (scope || 'all') as SuppressionScope,
              reason: reason || opts.reason,
              source: 'import',
            });
            if (ok) added++;
            else existing++;
            if (lineNo % 10_000 === 0) process.stderr.write(`… ${lineNo} lines read\n`);
          }
        } catch (err) {
          throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
        }
        return { added, existing, rejected };
      });
      if (globals(cmd).json) print(JSON.stringify(result));
      else {
        print(
          `${result.added} added, ${result.existing} already suppressed, ${result.rejected.length} rejected`,
        );
        for (const r of result.rejected.slice(0, 20)) print(`  rejected ${r}`);
        if (result.rejected.length > 20) print(`  … and ${result.rejected.length - 20} more`);
      }
      if (result.rejected.length > 0) process.exitCode = 1;
    });

  sup
    .command('export')
    .description('write every suppression as CSV (stdout, or --out FILE)')
    .option('--out <file>', 'write to this file')
    .action(async (opts: { out?: string }, cmd: Command) => {
      const rows = await withSpool(cmd, async (spool) => {
        const names = new Map((await spool.accounts.list()).map((a) => [a.id, a.name]));
        return (await spool.suppressions.list({})).map((r) =>
          [
            r.address ?? `hash:${r.addressHash}`,
            r.accountId === null ? '' : (names.get(r.accountId) ?? ''),
            r.scope,
            r.reason,
            r.source,
            new Date(r.createdAt).toISOString(),
          ]
            .map(csvField)
            .join(','),
        );
      });
      const text = ['address,account,scope,reason,source,created_at', ...rows].join('\n') + '\n';
      if (opts.out) writeFileSync(opts.out, text, { mode: 0o600 });
      else process.stdout.write(text);
    });
}
