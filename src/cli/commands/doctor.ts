import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { loadConfig, type Config } from '../../config/index.js';
import {
  checkConfig,
  createDoctorDns,
  exitCodeOf,
  formatResult,
  runDoctor,
  type CheckResult,
  type DoctorDkimKey,
} from '../../doctor/index.js';
import { errorMessage, normalizeDomain } from '../../shared/index.js';
import { openSpool, spoolPath } from '../../spool/index.js';
import { CliError, globals, print } from '../context.js';

/** The stored DKIM keys, without creating a database where there is none yet. */
async function readKeys(config: Config): Promise<{ keys: DoctorDkimKey[]; problem?: CheckResult }> {
  if (!existsSync(spoolPath(config.data_dir))) return { keys: [] };
  try {
    const spool = openSpool(config.data_dir);
    try {
      return { keys: await spool.dkimKeys.list() };
    } finally {
      await spool.close();
    }
  } catch (err) {
    return {
      keys: [],
      problem: {
        check: 'dkim',
        status: 'fail',
        subject: config.data_dir,
        message: `cannot read DKIM keys from ${spoolPath(config.data_dir)}: ${errorMessage(err)}`,
        fix: 'run petrel doctor as the user Petrel runs as (sudo -u petrel …)',
      },
    };
  }
}

export function register(program: Command): void {
  program
    .command('doctor [domain]')
    .description(
      'check what makes mail land: config, listeners, and (for DOMAIN, else every domain with a DKIM key) ' +
        "DKIM, SPF and DMARC records, reverse DNS of --ip, the bounce domain's MX; exit 1 when a check fails",
    )
    .option(
      '--ip <address>',
      'a public address mail leaves from (repeatable): checks SPF coverage and reverse DNS',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .action(async (domainText: string | undefined, opts: { ip: string[] }, cmd: Command) => {
      const domain = domainText === undefined ? undefined : normalizeDomain(domainText);
      if (domain === null) throw new CliError(`invalid domain "${domainText ?? ''}"`, 2);
      for (const ip of opts.ip) if (isIP(ip) === 0) throw new CliError(`--ip ${ip} is not an IP address`, 2);
      const g = globals(cmd);
      const emit = (results: readonly CheckResult[]): void => {
        for (const r of results) print(g.json ? JSON.stringify(r) : formatResult(r));
      };

      const { results, config } = checkConfig(() => {
        const loaded = loadConfig(g.config, process.env);
        return {
          config: loaded.config,
          origin: loaded.source.kind === 'file' ? loaded.source.path : 'embedded defaults',
        };
      });
      emit(results);
      if (!config) {
        process.exitCode = 1;
        return;
      }
      const { keys, problem } = await readKeys(config);
      if (problem) emit([problem]);
      const domains = domain ? [domain] : [...new Set(keys.filter((k) => k.active).map((k) => k.domain))];
      const rest = await runDoctor({
        config,
        domains,
        ips: opts.ip,
        dkimKeys: keys,
        dns: createDoctorDns(config.dns.servers),
      });
      emit(rest);
      process.exitCode = exitCodeOf([...results, ...(problem ? [problem] : []), ...rest]);
    });
}
