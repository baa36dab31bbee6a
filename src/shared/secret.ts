import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares a secret with what a client sent in constant time. Both sides are hashed first, so
 * the buffers compared always have equal length and neither the length nor a common prefix of
 * the secret shows in the time taken.
 */
export function secretsEqual(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}
