import { domainToASCII } from 'node:url';

/** A mailbox split at its last `@`; the domain is lower-cased ASCII (IDNA), the local part kept as given. */
export interface ParsedAddress {
  readonly local: string;
  readonly domain: string;
}

/**
 * Splits an envelope address. Returns null for anything that is not `local@domain` with a
 * syntactically plausible domain, so relay tricks (`a%b@c`, `@route:a@b`, `b!a`) never get here
 * parsed as something else.
 */
export function parseAddress(address: string): ParsedAddress | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  const local = address.slice(0, at);
  const domain = normalizeDomain(address.slice(at + 1));
  if (domain === null) return null;
  return { local, domain };
}

const LDH_NAME = /^[a-z0-9-]+(\.[a-z0-9-]+)+$/;
const ENDS_IN_NUMBER = /\.(\d+|0x[0-9a-f]*)$/;

/** Lower-cased ASCII form of a domain, or null when it is not a valid host name. */
export function normalizeDomain(domain: string): string | null {
  const trimmed = domain.trim().replace(/\.$/, '');
  if (trimmed === '' || trimmed.startsWith('[')) return null;
  const lower = trimmed.toLowerCase();
  // Letters, digits and hyphens are their own IDNA form, except A-labels (xn--), which need
  // checking, and names ending in a number, which the URL rules read as IPv4 (0x7f.1).
  if (lower.length <= 253 && LDH_NAME.test(lower) && !lower.includes('xn--') && !ENDS_IN_NUMBER.test(lower))
    return lower;
  const ascii = domainToASCII(lower);
  if (ascii === '' || ascii.length > 253) return null;
  if (!LDH_NAME.test(ascii)) return null;
  return ascii;
}

/** True when `domain` equals `allowed`, or `allowed` is `*.parent` and `domain` is below parent. */
export function domainMatches(domain: string, allowed: string): boolean {
  if (allowed.startsWith('*.')) return domain.endsWith(allowed.slice(1));
  return domain === allowed;
}

const ADDRESS_LIKE = /[^\s<>()"',;:]+@[A-Za-z0-9.-]+/g;

/**
 * Replaces anything shaped like an email address, for text that goes into logs (remote replies),
 * and each of `localParts` standing alone (a reply may quote a recipient's local part only).
 */
export function maskAddresses(text: string, localParts: readonly string[] = []): string {
  const words = [...new Set(localParts.filter((l) => l !== ''))]
    .sort((a, b) => b.length - a.length)
    .map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (words.length === 0) return text.replace(ADDRESS_LIKE, '[address]');
  // One pass, so that nothing already masked is masked again.
  const alone = `(?<![A-Za-z0-9_%+-])(?:${words.join('|')})(?![A-Za-z0-9_%+-])`;
  return text.replace(new RegExp(`${ADDRESS_LIKE.source}|${alone}`, 'gi'), '[address]');
}

/**
 * The form an address is compared and hashed in: trimmed, lower-cased, domain in ASCII (IDNA),
 * so the punycode and UTF-8 forms of a domain match. Returns null for a non-address.
 */
export function canonicalAddress(address: string): string | null {
  const parsed = parseAddress(address.trim());
  if (!parsed) return null;
  return `${parsed.local.toLowerCase()}@${parsed.domain}`;
}
