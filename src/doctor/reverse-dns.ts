import { isIP } from 'node:net';
import { addressesOf, ask, sameHost, sameIp, type DoctorDns } from './dns.js';
import { result, type CheckResult } from './types.js';

/**
 * Forward-confirmed reverse DNS of each sending address: its PTR names a host whose A/AAAA
 * records include the address again; best when that host is `hostname` (the EHLO name).
 */
export async function checkReverseDns(
  ips: readonly string[],
  hostname: string,
  dns: DoctorDns,
): Promise<CheckResult[]> {
  if (ips.length === 0) {
    return [
      result(
        'reverse-dns',
        'warn',
        hostname,
        'no sending address given: reverse DNS not checked',
        'run petrel doctor with --ip ADDRESS (the public address mail leaves from)',
      ),
    ];
  }
  const out: CheckResult[] = [];
  const setPtr = (ip: string): string =>
    `ask whoever runs ${ip} (hosting provider) to set its PTR to ${hostname}, and publish ${hostname}. IN ${isIP(ip) === 6 ? 'AAAA' : 'A'} ${ip}`;
  for (const ip of ips) {
    const ptr = await ask(() => dns.reverse(ip));
    if (!ptr.ok && ptr.reason === 'error') {
      out.push(
        result(
          'reverse-dns',
          'warn',
          ip,
          `cannot look up the PTR of ${ip}: ${ptr.detail}`,
          'retry; if it persists, check [dns] servers',
        ),
      );
      continue;
    }
    const names = ptr.ok ? ptr.value : [];
    if (names.length === 0) {
      out.push(
        result(
          'reverse-dns',
          'fail',
          ip,
          `${ip} has no PTR record: many receivers refuse mail from it`,
          setPtr(ip),
        ),
      );
      continue;
    }
    const confirmed: string[] = [];
    let lookupError: string | undefined;
    for (const name of names) {
      const addrs = await addressesOf(dns, name);
      if (!addrs.ok) lookupError = `${name}: ${addrs.detail}`;
      else if (addrs.value.some((a) => sameIp(a, ip))) confirmed.push(name);
    }
    if (confirmed.length === 0) {
      out.push(
        lookupError
          ? result(
              'reverse-dns',
              'warn',
              ip,
              `cannot confirm the PTR of ${ip}: ${lookupError}`,
              'retry; if it persists, check [dns] servers',
            )
          : result(
              'reverse-dns',
              'fail',
              ip,
              `${ip} points to ${names.join(', ')}, which does not resolve back to ${ip}`,
              `publish ${names[0]!}. IN ${isIP(ip) === 6 ? 'AAAA' : 'A'} ${ip}, or ${setPtr(ip)}`,
            ),
      );
    } else if (!confirmed.some((n) => sameHost(n, hostname))) {
      out.push(
        result(
          'reverse-dns',
          'warn',
          ip,
          `${ip} is forward-confirmed as ${confirmed[0]!}, but hostname (EHLO) is ${hostname}`,
          `set hostname = "${confirmed[0]!.replace(/\.$/, '')}" or change the PTR of ${ip} to ${hostname}`,
        ),
      );
    } else {
      out.push(result('reverse-dns', 'ok', ip, `${ip} ⇄ ${hostname} (forward-confirmed reverse DNS)`));
    }
  }
  return out;
}
