import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { eraseAddress, exportAddress } from '../../privacy/index.js';
import { canonicalAddress } from '../../shared/index.js';
import type { Spool } from '../../spool/index.js';
import { CliError, globals, print, withSpool } from '../context.js';

async function accountId(spool: Spool, name: string | undefined): Promise<number | null> {
  if (!name) return null;
  const a = await spool.accounts.get(name);
  if (!a) throw new CliError(`no account named ${name}`);
  return a.id;
}

function checked(address: string): string {
  const canonical = canonicalAddress(address);
  if (!canonical) throw new CliError(`not an email address: ${address}`, 2);
  return canonical;
}

export function register(program: Command): void {
  const privacy = program.command('privacy').description('data subject requests (GDPR, CPRA)');

  privacy
    .command('erase <address>')
    .description(
      'delete every message, event, bounce and token of an address; keep only a hashed suppression',
    )
    .option('--account <name>', "only this account's data (default: every account)")
    .option('--wait <seconds>', 'how long to wait for a delivery in flight to finish or abort', '60')
    .action(async (address: string, opts: { account?: string; wait: string }, cmd: Command) => {
      const canonical = checked(address);
      // Number('') is 0 and Number('abc') NaN, which would wait not at all: only digits pass.
      if (!/^\d{1,9}$/.test(opts.wait)) throw new CliError('--wait takes a whole number of seconds', 2);
      const report = await withSpool(cmd, async (spool) =>
        eraseAddress(spool, canonical, {
          accountId: await accountId(spool, opts.account),
          waitMs: Number(opts.wait) * 1000,
        }),
      );
      if (globals(cmd).json) print(JSON.stringify(report));
      else {
        const c = report.counts;
        print(`erased (request ${report.requestId}):`);
        print(
          `  messages ${c.messages}, recipient rows ${c.recipients}, events ${c.events}, bounces and complaints ${c.bounces}, unsubscribe tokens ${c.unsubscribeTokens}`,
        );
        print(`  other recipients of those messages cancelled: ${c.otherRecipientsCancelled}`);
        print(`  suppressions kept as a keyed hash only: ${c.suppressionsKeptAsHash}`);
        if (!report.quiesced) print('  warning: a delivery was still in flight at the deadline');
        if (!report.scrubbed)
          print('  warning: the WAL could not be truncated yet; it will be at the next checkpoint');
      }
      if (!report.quiesced) process.exitCode = 1;
    });

  privacy
    .command('export <address>')
    .description('everything held about an address, as one JSON document')
    .option('--account <name>', "only this account's data")
    .option('--out <file>', 'write to this file (mode 0600) instead of stdout')
    .action(async (address: string, opts: { account?: string; out?: string }, cmd: Command) => {
      const canonical = checked(address);
      const doc = await withSpool(cmd, async (spool) =>
        exportAddress(spool, canonical, await accountId(spool, opts.account)),
      );
      const text = `${JSON.stringify(doc, null, 2)}\n`;
      if (opts.out) writeFileSync(opts.out, text, { mode: 0o600 });
      else process.stdout.write(text);
    });
}
