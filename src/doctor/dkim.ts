import { dnsRecord, type KeyAlgorithm } from '../dkim/index.js';
import { errorMessage } from '../shared/index.js';
import { txtRecords, type DoctorDns } from './dns.js';
import { result, type CheckResult } from './types.js';

/** What the doctor needs of a stored DKIM key (spool `dkimKeys.list()` rows fit). */
export interface DoctorDkimKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: KeyAlgorithm;
  /** Base64 SPKI DER, as stored by `petrel dkim keygen`. */
  readonly publicKey: string;
  readonly active: boolean;
}

/** The tags of a DKIM key record (RFC 6376 §3.6.1), names lower-cased, whitespace folded out. */
export function parseTags(record: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of record.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    tags.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).replace(/\s+/g, ''));
  }
  return tags;
}

/**
 * For each active key of the domain: is `<selector>._domainkey.<domain>` published, and does its
 * `p=` carry the same public key Petrel signs with?
 */
export async function checkDkim(
  domain: string,
  keys: readonly DoctorDkimKey[],
  dns: DoctorDns,
): Promise<CheckResult[]> {
  const own = keys.filter((k) => k.domain === domain);
  const active = own.filter((k) => k.active);
  if (active.length === 0) {
    return [
      result(
        'dkim',
        'fail',
        domain,
        own.length > 0
          ? `${domain} has DKIM keys but none is active`
          : `${domain} has no DKIM key: mail is sent unsigned`,
        `petrel dkim keygen ${domain}, then publish the TXT record it prints`,
      ),
    ];
  }
  const out: CheckResult[] = [];
  for (const key of active) {
    let expected: ReturnType<typeof dnsRecord>;
    try {
      expected = dnsRecord(key.selector, key.domain, key.algorithm, key.publicKey);
    } catch (err) {
      out.push(
        result(
          'dkim',
          'fail',
          domain,
          `stored key ${key.selector} is unreadable: ${errorMessage(err)}`,
          `petrel dkim keygen ${domain}`,
        ),
      );
      continue;
    }
    const want = parseTags(expected.value).get('p') ?? '';
    const subject = expected.name;
    const publish = `publish: ${expected.zoneLine}`;
    const found = await txtRecords(dns, expected.name);
    if (!found.ok) {
      out.push(
        result(
          'dkim',
          'warn',
          subject,
          `cannot look up ${expected.name}: ${found.detail}`,
          "retry; if it persists, check [dns] servers and the zone's name servers",
        ),
      );
      continue;
    }
    const records = found.value.filter((r) => /(^|;)\s*p\s*=/i.test(r) || /^\s*v\s*=\s*DKIM1/i.test(r));
    if (records.length === 0) {
      out.push(
        result(
          'dkim',
          'fail',
          subject,
          `no DKIM record at ${expected.name} (selector ${key.selector}, ${key.algorithm})`,
          publish,
        ),
      );
      continue;
    }
    const tags = records.map(parseTags);
    const matching = tags.filter(
      (t) => t.get('p') === want && (t.get('k') ?? 'rsa').toLowerCase() === key.algorithm,
    );
    if (matching.length > 0 && records.length === 1) {
      const testing = (matching[0]!.get('t') ?? '').split(':').includes('y');
      out.push(
        testing
          ? result(
              'dkim',
              'warn',
              subject,
              `${expected.name} matches the active key but has t=y (testing): receivers may ignore signatures`,
              'remove t=y once signatures verify',
            )
          : result('dkim', 'ok', subject, `${expected.name} publishes the active ${key.algorithm} key`),
      );
    } else if (matching.length > 0) {
      out.push(
        result(
          'dkim',
          'warn',
          subject,
          `${expected.name} has ${records.length} DKIM records; verifiers may use another one`,
          `keep only: ${expected.zoneLine}`,
        ),
      );
    } else if (tags.some((t) => t.get('p') === '')) {
      out.push(result('dkim', 'fail', subject, `${expected.name} is revoked (empty p=)`, publish));
    } else {
      out.push(
        result(
          'dkim',
          'fail',
          subject,
          `${expected.name} publishes a different key than the active one (selector ${key.selector}): signatures will not verify`,
          `replace the record; ${publish}`,
        ),
      );
    }
  }
  return out;
}
