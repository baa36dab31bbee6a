import type { Command } from 'commander';
import { configReference, loadConfig, loadShapingRules, readMetricsToken } from '../../config/index.js';
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
      readMetricsToken(cfg.http);
      const rules = loadShapingRules(cfg.shaping);
      print(
        `config ok: ${source.kind === 'file' ? source.path : 'embedded defaults'} (${rules.length} shaping rules)`,
      );
    });

  config
    .command('reference')
    .description('print every configuration key with its type, default and meaning (Markdown)')
    .action(() => {
      process.stdout.write(configReference());
    });
}
