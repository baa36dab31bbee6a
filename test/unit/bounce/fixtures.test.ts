/**
 * Accuracy over every sample in fixtures/bounces with an expected reading (expected.jsonl), scored
 * the way the project's evaluation scores it: rows paired by recipient, status exact (Sisimai's
 * internal 5.0.9xx codes excluded), hard/soft against Sisimai's narrow hard bounce, reason on a
 * coarse vocabulary. CI fails when an aggregate drops below the acceptance floors.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyMessage, type BounceResult } from '../../../src/bounce/index.js';

interface ExpectedRow {
  readonly file: string;
  readonly recipient: string | null;
  readonly status: string | null;
  readonly status_pseudo?: boolean;
  readonly alt_status?: string;
  readonly reason: string | null;
  readonly alt_reason?: string;
  readonly hardbounce: boolean | null;
  readonly alt_hardbounce?: boolean;
  readonly kind: 'dsn' | 'arf' | 'autoreply' | 'none';
}

const ROOT = new URL('../../../fixtures/bounces/', import.meta.url);

const expected: ExpectedRow[] = readFileSync(new URL('expected.jsonl', ROOT), 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as ExpectedRow);

/** Sisimai reason → the coarse label the evaluation scores. */
const COARSE: Readonly<Record<string, string>> = {
  userunknown: 'user_unknown',
  hasmoved: 'user_unknown',
  mailboxfull: 'mailbox_full',
  hostunknown: 'host_unknown',
  notaccept: 'host_unknown',
  blocked: 'policy',
  rejected: 'policy',
  filtered: 'policy',
  policyviolation: 'policy',
  norelaying: 'policy',
  authfailure: 'policy',
  badreputation: 'policy',
  requireptr: 'policy',
  securityerror: 'policy',
  toomanyconn: 'policy',
  speeding: 'policy',
  suppressed: 'policy',
  spamdetected: 'content',
  virusdetected: 'content',
  contenterror: 'content',
  notcompliantrfc: 'content',
  mesgtoobig: 'too_big',
  exceedlimit: 'too_big',
  expired: 'expired',
  networkerror: 'system',
  systemerror: 'system',
  mailererror: 'system',
  systemfull: 'system',
  failedstarttls: 'system',
  suspend: 'suspended',
  feedback: 'complaint',
  delivered: 'delivered',
  vacation: 'autoreply',
};
const coarse = (reason: string | null | undefined): string | null =>
  reason ? (COARSE[reason] ?? 'other') : null;

function expectedCategory(e: ExpectedRow): string {
  if (e.kind === 'arf') return 'complaint';
  if (e.kind !== 'dsn' || e.reason === 'delivered') return 'none';
  return e.hardbounce ? 'hard' : 'soft';
}

/** Pairs expected rows with results: by recipient first, then by position among the rest. */
function pair(rows: readonly ExpectedRow[], results: readonly BounceResult[]): (BounceResult | null)[] {
  const used = new Set<number>();
  const out: (BounceResult | null)[] = rows.map((e) => {
    if (!e.recipient) return null;
    const j = results.findIndex((r, k) => !used.has(k) && r.recipient === e.recipient);
    if (j < 0) return null;
    used.add(j);
    return results[j]!;
  });
  return out.map((p) => {
    if (p) return p;
    const j = results.findIndex((_, k) => !used.has(k));
    if (j < 0) return null;
    used.add(j);
    return results[j]!;
  });
}

interface Tally {
  correct: number;
  total: number;
}

function score(): { metrics: Record<string, Tally>; failures: string[] } {
  const metrics: Record<string, Tally> = {
    recipient: { correct: 0, total: 0 },
    status: { correct: 0, total: 0 },
    hardsoft: { correct: 0, total: 0 },
    reason: { correct: 0, total: 0 },
  };
  const count = (m: string, ok: boolean): void => {
    metrics[m]!.total++;
    if (ok) metrics[m]!.correct++;
  };
  const failures: string[] = [];
  const byFile = new Map<string, ExpectedRow[]>();
  for (const row of expected) byFile.set(row.file, [...(byFile.get(row.file) ?? []), row]);
  for (const [file, rows] of byFile) {
    const reading = classifyMessage(readFileSync(new URL(file, ROOT)));
    if (rows.every((r) => r.kind === 'none')) {
      if (reading.kind !== 'none') failures.push(`${file}: read as ${reading.kind}, not a bounce`);
      continue;
    }
    const results = reading.results.filter((r) => r.kind !== 'none');
    const paired = pair(rows, results);
    rows.forEach((e, i) => {
      const got = paired[i] ?? null;
      const wrong: string[] = [];
      if (e.recipient) {
        const ok = got?.recipient === e.recipient;
        count('recipient', ok);
        if (!ok) wrong.push(`recipient ${got?.recipient ?? '-'}`);
      }
      if (e.status && !e.status_pseudo) {
        const ok = !!got?.status && (got.status === e.status || got.status === e.alt_status);
        count('status', ok);
        if (!ok) wrong.push(`status ${got?.status ?? '-'} (want ${e.status})`);
      }
      const altCategory = e.alt_hardbounce === undefined ? null : e.alt_hardbounce ? 'hard' : 'soft';
      const category = expectedCategory(e);
      const hsOk = !!got && (got.category === category || got.category === altCategory);
      count('hardsoft', hsOk);
      if (!hsOk) wrong.push(`category ${got?.category ?? '-'} (want ${category})`);
      const want = coarse(e.reason);
      const have = coarse(got?.reason);
      const reasonOk =
        !!got && (have === want || (e.alt_reason !== undefined && have === coarse(e.alt_reason)));
      count('reason', reasonOk);
      if (!reasonOk) wrong.push(`reason ${got?.reason ?? '-'} (want ${e.reason})`);
      if (wrong.length > 0) failures.push(`${file} ${e.recipient ?? ''}: ${wrong.join(', ')}`);
    });
  }
  return { metrics, failures };
}

describe('classifyMessage over every fixture with an expected reading', () => {
  const { metrics, failures } = score();
  const pct = (m: string): number => (100 * metrics[m]!.correct) / metrics[m]!.total;

  it('covers the copied samples', () => {
    expect(expected.length).toBeGreaterThanOrEqual(200);
  });

  it.each([
    ['recipient', 95],
    ['status', 95],
    ['hardsoft', 95],
    ['reason', 90],
  ] as const)('gets %s right for at least %i%% of rows', (metric, floor) => {
    // The failing rows are listed so a regression shows what changed.
    expect({ accuracy: pct(metric), failures: pct(metric) >= floor ? [] : failures }).toEqual({
      accuracy: expect.any(Number) as number,
      failures: [],
    });
    expect(pct(metric)).toBeGreaterThanOrEqual(floor);
  });
});
