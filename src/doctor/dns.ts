import { Resolver } from 'node:dns/promises';
import { ipInCidrs, parseCidr } from '../config/index.js';
import { errorMessage } from '../shared/index.js';

/**
 * The DNS questions the doctor asks, shaped like `node:dns/promises` `Resolver` so that the real
 * one fits and tests can answer from a table. Failures reject with an error carrying `code`
 * (ENOTFOUND for NXDOMAIN, ENODATA for no records of that type, anything else: lookup failed).
 */
export interface DoctorDns {
  resolveTxt(name: string): Promise<string[][]>;
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  resolvePtr(name: string): Promise<string[]>;
  reverse(ip: string): Promise<string[]>;
}

/** A resolver on the configured `[dns] servers` ("ip" or "ip:port"); empty: the system's. */
export function createDoctorDns(servers: readonly string[], timeoutMs = 5000): DoctorDns {
  const resolver = new Resolver({ timeout: Math.max(100, Math.floor(timeoutMs / 2)), tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return resolver;
}

/** A lookup's answer, or why there is none; lookups never throw into the checks. */
export type Answer<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: 'nxdomain' | 'nodata' | 'error'; readonly detail: string };

/** Runs a lookup, folding NXDOMAIN and "no records" into an empty answer kind the checks branch on. */
export async function ask<T>(lookup: () => Promise<T>): Promise<Answer<T>> {
  try {
    return { ok: true, value: await lookup() };
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'ENOTFOUND') return { ok: false, reason: 'nxdomain', detail: 'NXDOMAIN' };
    if (code === 'ENODATA') return { ok: false, reason: 'nodata', detail: 'no records' };
    return { ok: false, reason: 'error', detail: typeof code === 'string' ? code : errorMessage(err) };
  }
}

/** True when the name does not exist or has no records of the type asked. */
export function isAbsent<T>(a: Answer<T>): a is Extract<Answer<T>, { ok: false }> {
  return !a.ok && a.reason !== 'error';
}

/** Addresses (A then AAAA) of a host; records that do not exist are an empty list. */
export async function addressesOf(dns: DoctorDns, host: string): Promise<Answer<string[]>> {
  const [v4, v6] = await Promise.all([ask(() => dns.resolve4(host)), ask(() => dns.resolve6(host))]);
  const failed = [v4, v6].find((a) => !a.ok && a.reason === 'error');
  if (failed && !failed.ok) return failed;
  return { ok: true, value: [...(v4.ok ? v4.value : []), ...(v6.ok ? v6.value : [])] };
}

/** TXT records of a name, each joined from its character-strings (RFC 7208 §3.3, RFC 6376 §3.6.2.2). */
export async function txtRecords(dns: DoctorDns, name: string): Promise<Answer<string[]>> {
  const a = await ask(() => dns.resolveTxt(name));
  if (!a.ok) return isAbsent(a) ? { ok: true, value: [] } : a;
  return { ok: true, value: a.value.map((chunks) => chunks.join('')) };
}

/** "a.example." and "A.Example" name the same host. */
export function sameHost(a: string, b: string): boolean {
  return a.toLowerCase().replace(/\.$/, '') === b.toLowerCase().replace(/\.$/, '');
}

/** "2001:db8::1" and "2001:0db8:0:0::1" are the same address. */
export function sameIp(a: string, b: string): boolean {
  const cidr = parseCidr(a);
  return cidr !== null && ipInCidrs(b, [cidr]);
}
