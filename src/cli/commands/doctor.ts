import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { probeRedis } from '../../cluster/index.js';
import { loadConfig, type Config } from '../../config/index.js';
import {
  checkConfig,
  createDoctorDns,
  exitCodeOf,
  formatResult,
  result,
  runDoctor,
  type CheckResult,
  type DoctorDkimKey,
} from '../../doctor/index.js';
import { errorMessage, normalizeDomain } from '../../shared/index.js';
import { connectSpool, spoolPath } from '../../spool/index.js';
import { CliError, globals, print } from '../context.js';

/** The stored DKIM keys, without creating a database where there is none yet. */
async function readKeys(config: Config): Promise<{ keys: DoctorDkimKey[]; problem?: CheckResult }> {
  if (config.spool.url === '' && !existsSync(spoolPath(config.data_dir))) return { keys: [] };
  try {
    const spool = await connectSpool({ dataDir: config.data_dir, url: config.spool.url });
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

/** The spool (reachable, durable, schema current) and, when set, the shaping Redis. */
async function checkStores(config: Config): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  if (config.spool.url !== '' || existsSync(spoolPath(config.data_dir))) {
    try {
      const spool = await connectSpool({ dataDir: config.data_dir, url: config.spool.url });
      try {
        const h = await spool.health();
        if (!h.durable)
          out.push(
            result(
              'spool',
              'fail',
              h.location,
              `commits are not flushed to disk (${h.settings})`,
              h.backend === 'postgres'
                ? 'set fsync = on and synchronous_commit = on in postgresql.conf, then reload PostgreSQL'
                : 'let Petrel open the spool (it sets synchronous=FULL)',
            ),
          );
        else if (h.schema.current !== h.schema.latest)
          out.push(
            result(
              'spool',
              'fail',
              h.location,
              `schema version ${h.schema.current}, this Petrel has ${h.schema.latest}`,
              'upgrade every node to the same Petrel',
            ),
          );
        else
          out.push(
            result(
              'spool',
              'ok',
              h.location,
              `${h.backend}, durable (${h.settings}), schema ${h.schema.current}`,
            ),
          );
      } finally {
        await spool.close();
      }
    } catch (err) {
      out.push(
        result(
          'spool',
          'fail',
          config.spool.url === '' ? spoolPath(config.data_dir) : 'spool.url',
          errorMessage(err),
          config.spool.url === ''
            ? 'run petrel doctor as the user Petrel runs as (sudo -u petrel …)'
            : 'check [spool] url, the server and its pg_hba.conf',
        ),
      );
    }
  }
  if (config.cluster.redis !== '') {
    const r = await probeRedis(config.cluster.redis);
    out.push(
      r.ok
        ? result('redis', 'ok', 'cluster.redis', `${r.detail} answers`)
        : result(
            'redis',
            'fail',
            'cluster.redis',
            `Redis does not answer: ${r.detail}`,
            'check [cluster] redis and the Redis server; meanwhile limits are kept per node',
          ),
    );
  }
  return out;
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
      const stores = await checkStores(config);
      emit(stores);
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
      process.exitCode = exitCodeOf([...results, ...stores, ...(problem ? [problem] : []), ...rest]);
    });
}
