import { addressesOf, ask, sameHost, sameIp, type DoctorDns } from './dns.js';
import { result, type CheckResult } from './types.js';

/**
 * Bounces come back to VERP addresses on `inbound.bounce_domain`, so its MX must reach this
 * host: an MX naming `hostname`, or (with `ips`) an MX host with one of the sending addresses.
 */
export async function checkBounceMx(
  bounceDomain: string,
  hostname: string,
  ips: readonly string[],
  dns: DoctorDns,
): Promise<CheckResult[]> {
  const subject = bounceDomain;
  const publish = `publish: ${bounceDomain}. IN MX 10 ${hostname}. (and ${hostname} needs an A record for this host)`;
  if (bounceDomain === 'localhost' || bounceDomain.endsWith('.localhost')) {
    return [
      result(
        'bounce-mx',
        'fail',
        subject,
        `inbound.bounce_domain is ${bounceDomain}: bounces cannot reach it`,
        `set inbound.bounce_domain to a domain you control (like bounces.example.com), then ${publish}`,
      ),
    ];
  }
  const mx = await ask(() => dns.resolveMx(bounceDomain));
  if (!mx.ok && mx.reason === 'error') {
    return [
      result(
        'bounce-mx',
        'warn',
        subject,
        `cannot look up MX of ${bounceDomain}: ${mx.detail}`,
        'retry; if it persists, check [dns] servers',
      ),
    ];
  }
  const hosts = (mx.ok ? mx.value : []).filter((r) => r.exchange !== '' && r.exchange !== '.');
  if (hosts.length === 0) {
    return [
      result(
        'bounce-mx',
        'fail',
        subject,
        `${bounceDomain} has no MX record: bounces and complaints will not reach Petrel`,
        publish,
      ),
    ];
  }
  const names = hosts.sort((a, b) => a.priority - b.priority).map((r) => r.exchange);
  let here = names.find((n) => sameHost(n, hostname));
  if (!here && ips.length > 0) {
    for (const n of names) {
      const addrs = await addressesOf(dns, n);
      if (addrs.ok && addrs.value.some((a) => ips.some((ip) => sameIp(ip, a)))) {
        here = n;
        break;
      }
    }
  }
  if (!here) {
    return [
      result(
        'bounce-mx',
        'fail',
        subject,
        `MX of ${bounceDomain} is ${names.join(', ')}, not this host (${hostname}): bounces go elsewhere`,
        `replace the MX: ${publish}`,
      ),
    ];
  }
  const addrs = await addressesOf(dns, here);
  if (!addrs.ok) {
    return [
      result(
        'bounce-mx',
        'warn',
        subject,
        `MX of ${bounceDomain} is ${here}, but its address cannot be looked up: ${addrs.detail}`,
        'retry; if it persists, check [dns] servers',
      ),
    ];
  }
  if (addrs.value.length === 0) {
    return [
      result(
        'bounce-mx',
        'fail',
        subject,
        `MX of ${bounceDomain} is ${here}, which has no A or AAAA record`,
        `publish: ${here.replace(/\.$/, '')}. IN A <this host's public address>`,
      ),
    ];
  }
  if (ips.length > 0 && !addrs.value.some((a) => ips.some((ip) => sameIp(ip, a)))) {
    return [
      result(
        'bounce-mx',
        'warn',
        subject,
        `MX of ${bounceDomain} is ${here} (${addrs.value.join(', ')}), not at ${ips.join(', ')}`,
        'fine if inbound mail reaches this host another way (NAT, a second address); else fix the A record',
      ),
    ];
  }
  return [result('bounce-mx', 'ok', subject, `MX of ${bounceDomain} is ${here} (${addrs.value.join(', ')})`)];
}
