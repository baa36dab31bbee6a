import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../shared/index.js';

const DAY_MS = 86_400_000;

/**
 * Per-recipient return paths (VERP) on the bounce domain: `b-<recipient>-<day>-<mac>@domain`.
 * The MAC (HMAC-SHA256 with a key derived from the install secret) makes tokens unforgeable, and
 * the day lets old tokens expire, so a forged or replayed report cannot suppress anyone.
 */
export interface Verp {
  returnPath(recipientId: number): string;
  /** The recipient id of a valid, unexpired token address on the bounce domain; null otherwise. */
  parse(address: string): number | null;
}

export interface VerpOptions {
  readonly secret: Buffer;
  readonly bounceDomain: string;
  readonly clock: Clock;
  /** How long a return path stays valid. */
  readonly maxAgeMs: number;
}

export function createVerp(options: VerpOptions): Verp {
  const key = createHmac('sha256', options.secret).update('petrel verp v1').digest();
  const domain = options.bounceDomain.toLowerCase();
  const mac = (id: string, day: string): Buffer =>
    createHmac('sha256', key).update(`${id}.${day}`).digest().subarray(0, 8);
  const pattern = new RegExp(
    `b-([0-9a-z]{1,12})-([0-9a-z]{1,6})-([0-9a-f]{16})@${domain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
    'gi',
  );

  const check = (id: string, day: string, given: string): number | null => {
    const expected = mac(id, day);
    const got = Buffer.from(given, 'hex');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) return null;
    const issued = parseInt(day, 36) * DAY_MS;
    if (options.clock.now() - issued > options.maxAgeMs) return null;
    const n = parseInt(id, 36);
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  };

  return {
    returnPath(recipientId) {
      const id = recipientId.toString(36);
      const day = Math.floor(options.clock.now() / DAY_MS).toString(36);
      return `b-${id}-${day}-${mac(id, day).toString('hex')}@${domain}`;
    },
    parse(address) {
      const lower = address.trim().toLowerCase();
      pattern.lastIndex = 0;
      const m = pattern.exec(lower);
      if (!m || m.index !== 0 || m[0].length !== lower.length) return null;
      return check(m[1]!, m[2]!, m[3]!);
    },
  };
}
