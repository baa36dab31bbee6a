import { createHmac, randomBytes } from 'node:crypto';
import { canonicalAddress, secretsEqual } from '../shared/index.js';
import type { BounceWrite, SqlValue } from './hot-ops.js';

// The keyed forms of addresses every backend stores. Both compute them here, so that a spool
// copied from one backend to the other matches the same hashes and accepts the same tokens.

/** `all`: no mail at all (bounces, complaints, manual); `marketing`: no marketing mail (unsubscribes). */
export type SuppressionScope = 'all' | 'marketing';

export interface BounceRecordInput {
  readonly accountId: number | null;
  readonly recipientId: number | null;
  readonly messageId: string | null;
  readonly address: string;
  readonly kind: string;
  readonly category: string;
  readonly reason: string;
  readonly status: string | null;
  readonly diagnostic: string | null;
  readonly source: string;
}

/** When a bounce suppresses its address, and with which entry. */
export interface BounceRule {
  readonly scope: SuppressionScope;
  readonly reason: string;
  readonly source: string;
  /** Null: at once (hard bounce, complaint); else once this many soft bounces fall after `since`. */
  readonly soft: { readonly limit: number; readonly since: number } | null;
}

export interface AddressKeys {
  /** HMAC of the canonical address under a key derived from the install secret (hex). */
  addressKey(address: string): string;
  /** A new unsubscribe token: 12 random characters and their 12-character MAC. */
  newToken(): string;
  /** Whether the token has the shape and MAC of one newToken made; checked before any lookup. */
  tokenValid(token: string): boolean;
  /** Parameters of INSERT_BOUNCE / PG_INSERT_BOUNCE, in their column order. */
  bounceParams(b: BounceRecordInput, canonical: string, now: number): SqlValue[];
  /** See SuppressionStore.planBounce. */
  planBounce(
    b: BounceRecordInput & { readonly recipientId: number },
    rule: BounceRule | null,
    now: number,
  ): BounceWrite;
}

export function addressKeys(secret: Buffer): AddressKeys {
  const hashKey = createHmac('sha256', secret).update('petrel address key v1').digest();
  const tokenKey = createHmac('sha256', secret).update('petrel unsubscribe token v1').digest();
  const addressKey = (address: string): string => {
    const canonical = canonicalAddress(address) ?? address.trim().toLowerCase();
    return createHmac('sha256', hashKey).update(canonical).digest('hex');
  };
  const tokenMac = (id: string): string =>
    createHmac('sha256', tokenKey).update(id).digest('base64url').slice(0, 12);
  const bounceParams = (b: BounceRecordInput, canonical: string, now: number): SqlValue[] => [
    now,
    b.accountId,
    b.recipientId,
    b.messageId,
    addressKey(canonical),
    canonical,
    b.kind,
    b.category,
    b.reason,
    b.status,
    b.diagnostic,
    b.source,
  ];
  return {
    addressKey,
    newToken() {
      const id = randomBytes(9).toString('base64url');
      return `${id}${tokenMac(id)}`;
    },
    tokenValid(token) {
      return /^[A-Za-z0-9_-]{24}$/.test(token) && secretsEqual(token.slice(12), tokenMac(token.slice(0, 12)));
    },
    bounceParams,
    planBounce(b, rule, now) {
      const canonical = canonicalAddress(b.address) ?? b.address;
      const hash = addressKey(canonical);
      return {
        recipientId: b.recipientId,
        bounce: bounceParams(b, canonical, now),
        suppression: rule && {
          params: [b.accountId, hash, canonical, rule.scope, rule.reason, rule.source, now],
          soft: rule.soft && {
            addressHash: hash,
            accountId: b.accountId,
            since: rule.soft.since,
            limit: rule.soft.limit,
          },
        },
      };
    },
  };
}
