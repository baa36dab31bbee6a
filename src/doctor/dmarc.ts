import { parseTags } from './dkim.js';
import { txtRecords, type DoctorDns } from './dns.js';
import { result, type CheckResult } from './types.js';

/**
 * A DMARC record at `_dmarc.<domain>`, or inherited from a parent domain (the organizational
 * domain of RFC 7489 §6.6.3, approximated by walking up to two labels: no public suffix list).
 */
export async function checkDmarc(domain: string, dns: DoctorDns): Promise<CheckResult[]> {
  const labels = domain.split('.');
  const fix = `publish: _dmarc.${domain}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@${domain}" (then p=quarantine or p=reject once reports look right)`;
  for (let i = 0; i <= labels.length - 2; i++) {
    const owner = labels.slice(i).join('.');
    const name = `_dmarc.${owner}`;
    const txt = await txtRecords(dns, name);
    if (!txt.ok) {
      return [
        result(
          'dmarc',
          'warn',
          domain,
          `cannot look up ${name}: ${txt.detail}`,
          'retry; if it persists, check [dns] servers',
        ),
      ];
    }
    const records = txt.value.filter((r) => /^v\s*=\s*DMARC1\s*(;|$)/i.test(r.trim()));
    if (records.length === 0) continue;
    if (records.length > 1) {
      return [
        result(
          'dmarc',
          'fail',
          domain,
          `${name} has ${records.length} DMARC records: receivers ignore them all`,
          'keep one v=DMARC1 record',
        ),
      ];
    }
    const tags = parseTags(records[0]!);
    const policy = (i === 0 ? tags.get('p') : (tags.get('sp') ?? tags.get('p')))?.toLowerCase();
    if (policy !== 'none' && policy !== 'quarantine' && policy !== 'reject') {
      return [
        result(
          'dmarc',
          'fail',
          domain,
          `${name} has no valid p= policy`,
          'add p=none, p=quarantine or p=reject',
        ),
      ];
    }
    const where = i === 0 ? name : `${name} (inherited by ${domain})`;
    if (policy === 'none') {
      return [result('dmarc', 'ok', domain, `${where}: p=none (monitoring only)`)];
    }
    return [result('dmarc', 'ok', domain, `${where}: p=${policy}`)];
  }
  return [
    result(
      'dmarc',
      'fail',
      domain,
      `no DMARC record at _dmarc.${domain}: large mailboxes require one from bulk senders`,
      fix,
    ),
  ];
}
