import { writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readSpoolKey } from '../../config/index.js';
import { dnsRecord, generateKey, sealKey, type KeyAlgorithm } from '../../dkim/index.js';
import { makeDirectory, normalizeDomain } from '../../shared/index.js';
import { CliError, globals, print, withSpool } from '../context.js';

const SELECTOR = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

function defaultSelector(algo: KeyAlgorithm): string {
  const d = new Date();
  return `petrel${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${algo === 'ed25519' ? 'e' : 'r'}`;
}

function printRecord(
  cmd: Command,
  domain: string,
  selector: string,
  algorithm: KeyAlgorithm,
  publicKey: string,
): void {
  const rec = dnsRecord(selector, domain, algorithm, publicKey);
  if (globals(cmd).json) {
    print(
      JSON.stringify({
        domain,
        selector,
        algorithm,
        name: rec.name,
        type: 'TXT',
        value: rec.value,
        strings: rec.strings,
      }),
    );
    return;
  }
  print(`${rec.name}  TXT  "${rec.value}"`);
  print(`zone file: ${rec.zoneLine}`);
}

export function register(program: Command): void {
  const dkim = program.command('dkim').description('DKIM signing keys');

  dkim
    .command('keygen <domain>')
    .description('make a key for a domain, make it the active one, and print its DNS TXT record')
    .option('--selector <s>', 'selector (default: petrelYYYYMM plus r or e)')
    .option('--algo <algo>', 'rsa (2048 bits) or ed25519', 'rsa')
    .action(async (domainText: string, opts: { selector?: string; algo: string }, cmd: Command) => {
      const domain = normalizeDomain(domainText);
      if (!domain) throw new CliError(`invalid domain "${domainText}"`, 2);
      if (opts.algo !== 'rsa' && opts.algo !== 'ed25519') throw new CliError('--algo is rsa or ed25519', 2);
      const algorithm: KeyAlgorithm = opts.algo;
      const selector = (opts.selector ?? defaultSelector(algorithm)).toLowerCase();
      if (!SELECTOR.test(selector)) throw new CliError(`invalid selector "${selector}"`, 2);
      const key = await generateKey(algorithm);
      await withSpool(cmd, async (spool, config) => {
        let path: string;
        let sealedKey: Buffer | null = null;
        if (config.spool.url !== '') {
          // Every node signs: the key lives in the shared spool, sealed with the spool key.
          const spoolKey = readSpoolKey(config.spool, process.env);
          if (!spoolKey)
            throw new CliError(
              'a PostgreSQL spool keeps DKIM keys sealed in the database: set [spool] key_file or PETREL_SPOOL_KEY (the same on every node)',
            );
          sealedKey = sealKey(key.privateKeyPem, spoolKey);
          path = `spool:${domain}/${selector}`;
        } else {
          const dir = resolve(join(config.data_dir, 'dkim', domain));
          makeDirectory(dir, 0o700);
          path = join(dir, `${selector}.${algorithm}.pem`);
          // Written whole under a temporary name first: the daemon never reads half a key.
          writeFileSync(`${path}.tmp`, key.privateKeyPem, { mode: 0o600 });
          renameSync(`${path}.tmp`, path);
        }
        const added = await spool.dkimKeys.add({
          domain,
          selector,
          algorithm,
          privateKeyPath: path,
          publicKey: key.publicKeyDerBase64,
          sealedKey,
        });
        if (!added) throw new CliError(`${domain} already has a key with selector ${selector}`);
      });
      if (!globals(cmd).json)
        print(`key ${selector} for ${domain} (${algorithm}) is active; publish this record:`);
      printRecord(cmd, domain, selector, algorithm, key.publicKeyDerBase64);
    });

  dkim
    .command('list')
    .description('keys by domain, with the active ones marked')
    .action(async (_opts: unknown, cmd: Command) => {
      const keys = await withSpool(cmd, (spool) => spool.dkimKeys.list());
      if (globals(cmd).json) {
        for (const k of keys) {
          print(
            JSON.stringify({
              domain: k.domain,
              selector: k.selector,
              algorithm: k.algorithm,
              active: k.active,
              createdAt: new Date(k.createdAt).toISOString(),
            }),
          );
        }
        return;
      }
      if (keys.length === 0) print('no keys; make one with: petrel dkim keygen DOMAIN');
      for (const k of keys)
        print(
          `${k.domain}\t${k.selector}\t${k.algorithm}\t${k.active ? 'active' : 'inactive'}\t${new Date(k.createdAt).toISOString()}`,
        );
    });

  dkim
    .command('dns <domain>')
    .description("print the DNS TXT records of a domain's keys")
    .action(async (domainText: string, _opts: unknown, cmd: Command) => {
      const domain = normalizeDomain(domainText);
      if (!domain) throw new CliError(`invalid domain "${domainText}"`, 2);
      const keys = (await withSpool(cmd, (spool) => spool.dkimKeys.list())).filter(
        (k) => k.domain === domain,
      );
      if (keys.length === 0) throw new CliError(`no keys for ${domain}`);
      for (const k of keys) printRecord(cmd, k.domain, k.selector, k.algorithm, k.publicKey);
    });
}
