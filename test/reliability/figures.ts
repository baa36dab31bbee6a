import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Where the suite's figures go: parts/ while it runs, latest.json once it is done. */
export const RESULTS_DIR = resolve(import.meta.dirname, '../../reliability-results');
export const PARTS_DIR = join(RESULTS_DIR, 'parts');

/** One vector of the bad-input corpus (figure 3): neutralised unless it smuggled or crashed. */
export interface VectorOutcome {
  readonly name: string;
  readonly neutralised: boolean;
  readonly smuggled: number;
  readonly crashed: boolean;
}

/** One cross-tenant or forged action (figure 5). */
export interface AttemptOutcome {
  readonly name: string;
  readonly succeeded: boolean;
}

export type Part =
  | { readonly figure: 'crash-loop'; readonly result: Record<string, unknown> }
  | {
      readonly figure: 'fsync';
      readonly transactions: number;
      readonly violations: number;
      readonly control: { readonly transactions: number; readonly violations: number };
    }
  | { readonly figure: 'corpus'; readonly vectors: readonly VectorOutcome[] }
  | { readonly figure: 'tenancy'; readonly attempts: readonly AttemptOutcome[] }
  | {
      readonly figure: 'erasure';
      /** Addresses erased, one request each. */
      readonly requests: number;
      /** Requests whose address still matched, in any form, in a file or in /metrics afterwards. */
      readonly residue: number;
      /** 95th percentile of the time from running `petrel privacy erase` to its exit. */
      readonly p95Seconds: number;
    };

/**
 * Records a figure measured by one test; the global teardown merges every part. Tests record
 * before they assert, so a failing run still publishes what it measured.
 */
export function recordFigure(name: string, part: Part): void {
  mkdirSync(PARTS_DIR, { recursive: true });
  writeFileSync(join(PARTS_DIR, `${name}.json`), `${JSON.stringify(part, null, 2)}\n`);
}
