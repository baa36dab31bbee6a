import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError, print, withSpool } from '../context.js';

export function register(program: Command): void {
  program
    .command('backup <file>')
    .description('write a consistent copy of the database while the daemon runs (one consistent snapshot)')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const target = resolve(file);
      if (existsSync(target)) throw new CliError(`${target} exists; choose a new file`);
      await withSpool(cmd, (spool) => spool.backup(target));
      print(`backup written to ${target}`);
    });
}
