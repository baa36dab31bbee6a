import type { Command } from 'commander';
import { serve } from '../../main.js';
import { globals } from '../context.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the daemon: submission, spool and (as they are configured) delivery')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace (overrides log_level)')
    .action(async (opts: { logLevel?: string }, cmd: Command) => {
      await serve({ configPath: globals(cmd).config, logLevel: opts.logLevel });
    });
}
