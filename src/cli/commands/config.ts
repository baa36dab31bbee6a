import type { Command } from 'commander';
import { configReference, loadConfig } from '../../config/index.js';
import { loadTlsMaterial } from '../../tls/index.js';
import { globals, print } from '../context.js';

export function register(program: Command): void {
  const config = program.command('config').description('configuration');
  config
    .command('check')
    .description('validate the configuration without starting')
    .action(async (_opts: unknown, cmd: Command) => {
      const { config: cfg, source } = loadConfig(globals(cmd).config, process.env);
      if (cfg.tls.cert || cfg.tls.key) await loadTlsMaterial(cfg.tls, cfg.data_dir, cfg.hostname);
      if (cfg.submission.trusted_networks.length > 0 && !cfg.submission.trusted_account) {
        print('warning: submission.trusted_networks is set but trusted_account is empty; trusted clients cannot send');
      }
      print(`config ok: ${source.kind === 'file' ? source.path : 'embedded defaults'}`);
    });

  config
    .command('reference')
    .description('print every configuration key with its type, default and meaning (Markdown)')
    .action(() => {
      process.stdout.write(configReference());
    });
}
