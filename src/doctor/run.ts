import type { Config } from '../config/index.js';
import { checkBounceMx } from './bounce-mx.js';
import { checkDkim, type DoctorDkimKey } from './dkim.js';
import { checkDmarc } from './dmarc.js';
import type { DoctorDns } from './dns.js';
import { checkListeners, type BindProbe } from './listeners.js';
import { checkReverseDns } from './reverse-dns.js';
import { checkSpf } from './spf.js';
import type { CheckResult } from './types.js';

export interface DoctorOptions {
  readonly config: Config;
  /** Sending domains to check DKIM, SPF and DMARC for; none: those checks are skipped. */
  readonly domains: readonly string[];
  /** Public addresses mail leaves from (`--ip`); none: coverage and reverse DNS cannot be decided. */
  readonly ips: readonly string[];
  readonly dkimKeys: readonly DoctorDkimKey[];
  readonly dns: DoctorDns;
  readonly probe?: BindProbe;
}

/**
 * The checks after the config one, in the order they print: listeners, then per domain DKIM,
 * SPF and DMARC, then reverse DNS of the sending addresses and the bounce domain's MX.
 */
export async function runDoctor(options: DoctorOptions): Promise<CheckResult[]> {
  const { config, dns, ips } = options;
  const listeners = await checkListeners(config, options.probe);
  const perDomain = await Promise.all(
    options.domains.map(async (domain) => {
      const [dkim, spf, dmarc] = await Promise.all([
        checkDkim(domain, options.dkimKeys, dns),
        checkSpf(domain, ips, config.hostname, dns),
        checkDmarc(domain, dns),
      ]);
      return [...dkim, ...spf, ...dmarc];
    }),
  );
  const [reverse, bounce] = await Promise.all([
    checkReverseDns(ips, config.hostname, dns),
    checkBounceMx(config.inbound.bounce_domain, config.hostname, ips, dns),
  ]);
  return [...listeners, ...perDomain.flat(), ...reverse, ...bounce];
}

/** Exit status: 0 when nothing failed (warnings allowed), 1 otherwise. */
export function exitCodeOf(results: readonly CheckResult[]): number {
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}

/** Human output: one line per check, and an indented "fix:" line under each warn and fail. */
export function formatResult(r: CheckResult): string {
  const head = `${r.status.padEnd(4)}  ${r.check.padEnd(11)}  ${r.message}`;
  return r.fix === undefined ? head : `${head}\n${' '.repeat(19)}fix: ${r.fix}`;
}
