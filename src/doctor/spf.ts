import { isIP } from 'node:net';
import { ipInCidrs, parseCidr } from '../config/index.js';
import { addressesOf, ask, txtRecords, type DoctorDns } from './dns.js';
import { result, type CheckResult } from './types.js';

/** RFC 7208 results, plus `unknown` where the doctor cannot decide (macros, ptr, exists, DNS errors). */
export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'unknown';

export interface SpfVerdict {
  readonly result: SpfResult;
  /** The term that decided, or why there is no decision. */
  readonly detail: string;
}

const QUALIFIERS: Record<string, SpfResult> = { '+': 'pass', '-': 'fail', '~': 'softfail', '?': 'neutral' };
/** RFC 7208 §4.6.4: at most 10 terms that cause DNS lookups over the whole evaluation. */
const MAX_LOOKUPS = 10;

/** The `v=spf1` records among a name's TXT records. */
export function spfRecords(txt: readonly string[]): string[] {
  return txt.filter((r) => /^v=spf1(\s|$)/i.test(r.trim()));
}

/**
 * Evaluates whether `ip` may send for `domain` as far as can be decided without macros:
 * ip4/ip6, a, mx, include, redirect and all; ptr, exists and macros yield `unknown`.
 */
export async function evaluateSpf(domain: string, ip: string, dns: DoctorDns): Promise<SpfVerdict> {
  const budget = { lookups: 0 };
  return evaluate(domain, ip, dns, budget, 0);
}

async function evaluate(
  domain: string,
  ip: string,
  dns: DoctorDns,
  budget: { lookups: number },
  depth: number,
): Promise<SpfVerdict> {
  if (depth > MAX_LOOKUPS) return { result: 'permerror', detail: 'include/redirect loop' };
  const txt = await txtRecords(dns, domain);
  if (!txt.ok) return { result: 'unknown', detail: `cannot look up TXT of ${domain}: ${txt.detail}` };
  const records = spfRecords(txt.value);
  if (records.length === 0) return { result: 'none', detail: `${domain} has no SPF record` };
  if (records.length > 1)
    return { result: 'permerror', detail: `${domain} has ${records.length} SPF records` };
  const family = isIP(ip);
  let redirect: string | undefined;
  for (const term of records[0]!.trim().split(/\s+/).slice(1)) {
    const modifier = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(term);
    if (modifier) {
      if (modifier[1]!.toLowerCase() === 'redirect') redirect = modifier[2]!;
      continue;
    }
    const m = /^([+\-~?]?)([a-z0-9]+)(?::([^/]*))?(?:\/(\d+))?(?:\/\/(\d+))?$/i.exec(term);
    if (!m) return { result: 'permerror', detail: `${domain}: cannot parse "${term}"` };
    const qualifier = QUALIFIERS[m[1] || '+']!;
    const name = m[2]!.toLowerCase();
    const target = m[3];
    if (target?.includes('%')) return { result: 'unknown', detail: `${domain}: "${term}" uses macros` };
    let matched: boolean;
    if (name === 'all') matched = true;
    else if (name === 'ip4' || name === 'ip6') {
      const cidr = parseCidr(`${target ?? ''}${m[4] ? `/${m[4]}` : ''}`);
      if (!cidr || cidr.family !== (name === 'ip4' ? 4 : 6)) {
        return { result: 'permerror', detail: `${domain}: bad address in "${term}"` };
      }
      matched = ipInCidrs(ip, [cidr]);
    } else if (name === 'a' || name === 'mx') {
      if (++budget.lookups > MAX_LOOKUPS) return { result: 'permerror', detail: 'more than 10 DNS lookups' };
      const host = target || domain;
      const prefix = family === 6 ? m[5] : m[4];
      let hosts = [host];
      if (name === 'mx') {
        const mx = await ask(() => dns.resolveMx(host));
        if (!mx.ok && mx.reason === 'error')
          return { result: 'unknown', detail: `cannot look up MX of ${host}: ${mx.detail}` };
        hosts = mx.ok ? mx.value.slice(0, 10).map((r) => r.exchange) : [];
      }
      matched = false;
      for (const h of hosts) {
        const addrs = await addressesOf(dns, h);
        if (!addrs.ok) return { result: 'unknown', detail: `cannot look up ${h}: ${addrs.detail}` };
        const cidrs = addrs.value
          .map((a) => parseCidr(prefix ? `${a}/${prefix}` : a))
          .filter((c) => c !== null);
        if (ipInCidrs(ip, cidrs)) matched = true;
      }
    } else if (name === 'include') {
      if (++budget.lookups > MAX_LOOKUPS) return { result: 'permerror', detail: 'more than 10 DNS lookups' };
      if (!target) return { result: 'permerror', detail: `${domain}: include without a domain` };
      const inner = await evaluate(target, ip, dns, budget, depth + 1);
      if (inner.result === 'unknown') return inner;
      if (inner.result === 'none' || inner.result === 'permerror') {
        return { result: 'permerror', detail: `include:${target}: ${inner.detail}` };
      }
      matched = inner.result === 'pass';
    } else if (name === 'ptr' || name === 'exists') {
      return { result: 'unknown', detail: `${domain}: "${term}" cannot be decided here` };
    } else {
      return { result: 'permerror', detail: `${domain}: unknown mechanism "${term}"` };
    }
    if (matched) return { result: qualifier, detail: `${domain}: ${term}` };
  }
  if (redirect !== undefined) {
    if (++budget.lookups > MAX_LOOKUPS) return { result: 'permerror', detail: 'more than 10 DNS lookups' };
    if (redirect.includes('%')) return { result: 'unknown', detail: `${domain}: redirect uses macros` };
    const inner = await evaluate(redirect, ip, dns, budget, depth + 1);
    return inner.result === 'none'
      ? { result: 'permerror', detail: `redirect=${redirect}: ${inner.detail}` }
      : inner;
  }
  return { result: 'neutral', detail: `${domain}: no term matches` };
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
    const verdict = await evaluateSpf(domain, ip, dns);
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
