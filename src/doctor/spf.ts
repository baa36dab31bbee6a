import { isIP } from 'node:net';
import { spf } from 'mailauth/lib/spf/index.js';
import { txtRecords, type DoctorDns } from './dns.js';
import { result, type CheckResult } from './types.js';

/** RFC 7208 results, plus `unknown` where the DNS could not answer (a temporary error). */
export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'unknown';

export interface SpfVerdict {
  readonly result: SpfResult;
  /** What the evaluation said about its decision. */
  readonly detail: string;
}

/** The `v=spf1` records among a name's TXT records. */
export function spfRecords(txt: readonly string[]): string[] {
  return txt.filter((r) => /^v=spf1(\s|$)/i.test(r.trim()));
}

/** `dns.promises.resolve(name, type)`, the shape mailauth asks its resolver for, over DoctorDns. */
function resolverOf(dns: DoctorDns): (name: string, type: string) => Promise<unknown> {
  return async (name, type) => {
    switch (type) {
      case 'TXT':
        return dns.resolveTxt(name);
      case 'MX':
        return dns.resolveMx(name);
      case 'A':
        return dns.resolve4(name);
      case 'AAAA':
        return dns.resolve6(name);
      case 'PTR':
        return dns.resolvePtr(name);
      default:
        throw Object.assign(new Error(`no ${type} lookups`), { code: 'ENODATA' });
    }
  };
}

/**
 * Evaluates whether `ip` may send for `domain` the way receivers do (RFC 7208 in full, macros,
 * `exists`, `ptr` and the void-lookup limit included), by mailauth's evaluator.
 */
export async function evaluateSpf(
  domain: string,
  ip: string,
  dns: DoctorDns,
  hostname = 'petrel.doctor',
): Promise<SpfVerdict> {
  const verdict = await spf({
    sender: `postmaster@${domain}`,
    ip,
    helo: hostname,
    mta: hostname,
    resolver: resolverOf(dns) as NonNullable<Parameters<typeof spf>[0]['resolver']>,
  });
  const { result: r, comment } = verdict.status;
  const detail = comment ?? r;
  if (
    r === 'pass' ||
    r === 'fail' ||
    r === 'softfail' ||
    r === 'neutral' ||
    r === 'none' ||
    r === 'permerror'
  ) {
    return { result: r, detail };
  }
  return { result: 'unknown', detail };
}

function mechanismFor(ip: string): string {
  return isIP(ip) === 6 ? `ip6:${ip}` : `ip4:${ip}`;
}

/** The record with the sending addresses added right after `v=spf1`. */
function withAddresses(record: string | undefined, ips: readonly string[], fallback: string): string {
  const add = ips.map(mechanismFor).join(' ');
  if (!record) return `v=spf1 ${add || fallback} -all`;
  const rest = record.trim().split(/\s+/).slice(1).join(' ');
  return `v=spf1 ${add}${rest ? ` ${rest}` : ''}`;
}

/** SPF of the sending domain: one record, and (with `ips`) each sending address covered. */
export async function checkSpf(
  domain: string,
  ips: readonly string[],
  hostname: string,
  dns: DoctorDns,
): Promise<CheckResult[]> {
  const txt = await txtRecords(dns, domain);
  if (!txt.ok) {
    return [
      result(
        'spf',
        'warn',
        domain,
        `cannot look up TXT of ${domain}: ${txt.detail}`,
        'retry; if it persists, check [dns] servers',
      ),
    ];
  }
  const records = spfRecords(txt.value);
  if (records.length === 0) {
    return [
      result(
        'spf',
        'fail',
        domain,
        `${domain} has no SPF record: receivers cannot tell Petrel may send for it`,
        `publish: ${domain}. IN TXT "${withAddresses(undefined, ips, `a:${hostname}`)}"`,
      ),
    ];
  }
  if (records.length > 1) {
    return [
      result(
        'spf',
        'fail',
        domain,
        `${domain} has ${records.length} SPF records (a permanent error for receivers)`,
        'merge them into one v=spf1 record',
      ),
    ];
  }
  const record = records[0]!;
  if (/(^|\s)\+?all(\s|$)/i.test(record)) {
    return [
      result(
        'spf',
        'warn',
        domain,
        `SPF of ${domain} ends in +all: anyone may send as ${domain}`,
        'end the record with -all or ~all',
      ),
    ];
  }
  if (ips.length === 0) {
    return [
      result(
        'spf',
        'warn',
        domain,
        `${domain} has an SPF record; without --ip the doctor cannot tell whether it covers the sending address`,
        'run petrel doctor with --ip ADDRESS (the public address mail leaves from)',
      ),
    ];
  }
  const out: CheckResult[] = [];
  for (const ip of ips) {
    const verdict = await evaluateSpf(domain, ip, dns, hostname);
    const subject = `${domain} ${ip}`;
    if (verdict.result === 'pass') {
      out.push(result('spf', 'ok', subject, `SPF of ${domain} covers ${ip} (${verdict.detail})`));
    } else if (verdict.result === 'unknown') {
      out.push(
        result(
          'spf',
          'warn',
          subject,
          `cannot decide whether SPF of ${domain} covers ${ip}: ${verdict.detail}`,
          `make sure the record lists ${mechanismFor(ip)} or a host whose address it is`,
        ),
      );
    } else if (verdict.result === 'permerror' || verdict.result === 'none') {
      out.push(
        result(
          'spf',
          'fail',
          subject,
          `SPF of ${domain} is broken: ${verdict.detail}`,
          'fix the record so that receivers can evaluate it',
        ),
      );
    } else {
      out.push(
        result(
          'spf',
          'fail',
          subject,
          `SPF of ${domain} does not cover ${ip} (${verdict.result}: ${verdict.detail})`,
          `publish: ${domain}. IN TXT "${withAddresses(record, [ip], '')}"`,
        ),
      );
    }
  }
  return out;
}
