import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PARTS_DIR, RESULTS_DIR, type AttemptOutcome, type Part, type VectorOutcome } from './figures.js';

export function setup(): void {
  rmSync(PARTS_DIR, { recursive: true, force: true });
  mkdirSync(PARTS_DIR, { recursive: true });
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** Merges the parts into the figure lines of RELIABILITY.md and writes latest.json. */
export function teardown(): void {
  if (!existsSync(PARTS_DIR)) return;
  const parts: Part[] = readdirSync(PARTS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(PARTS_DIR, f), 'utf8')) as Part);
  if (parts.length === 0) return;
  const lines: string[] = [];
  const figures: Record<string, unknown> = {};

  const crash = parts.find((p) => p.figure === 'crash-loop');
  if (crash?.figure === 'crash-loop') {
    const r = crash.result as { cycles: number; lost: number; acknowledged: number; duplicates: number };
    figures['crashLoop'] = r;
    lines.push(
      `messages lost after ${r.cycles} kill -9 cycles: ${r.lost} of ${r.acknowledged} (${r.duplicates} duplicates)`,
    );
  }
  const fsync = parts.find((p) => p.figure === 'fsync');
  if (fsync?.figure === 'fsync') {
    figures['fsyncBefore250'] = fsync;
    lines.push(
      `250 replies sent before the spool fsync: ${fsync.violations} of ${fsync.transactions} transactions (strace ordering check)`,
    );
    lines.push(
      `  control, synchronous=NORMAL: ${fsync.control.violations} of ${fsync.control.transactions} caught`,
    );
  }
  const vectors: VectorOutcome[] = parts.flatMap((p) => (p.figure === 'corpus' ? p.vectors : []));
  if (vectors.length > 0) {
    const neutralised = vectors.filter((v) => v.neutralised).length;
    const smuggled = vectors.reduce((n, v) => n + v.smuggled, 0);
    const crashes = vectors.filter((v) => v.crashed).length;
    figures['corpus'] = { vectors: vectors.length, neutralised, smuggled, crashes, detail: vectors };
    lines.push(
      `vectors neutralised: ${neutralised} of ${vectors.length} (smuggled messages at sink: ${smuggled}; process crashes: ${crashes})`,
    );
  }
  const erasure = parts.find((p) => p.figure === 'erasure');
  if (erasure?.figure === 'erasure') {
    figures['erasure'] = {
      requests: erasure.requests,
      residue: erasure.residue,
      p95Seconds: erasure.p95Seconds,
    };
    lines.push(
      `byte-matches of erased addresses across db/WAL/logs/rotated logs/metrics: ${erasure.residue} of ${erasure.requests} requests; p95 erasure completion time ${erasure.p95Seconds.toFixed(2)} s`,
    );
  }
  const attempts: AttemptOutcome[] = parts.flatMap((p) => (p.figure === 'tenancy' ? p.attempts : []));
  if (attempts.length > 0) {
    const succeeded = attempts.filter((a) => a.succeeded).length;
    figures['tenancy'] = { attempts: attempts.length, succeeded, detail: attempts };
    lines.push(`cross-tenant or forged actions that succeeded: ${succeeded} of ${attempts.length} attempts`);
  }

  const out = {
    at: new Date().toISOString(),
    commit: commit(),
    node: process.version,
    command: 'npm run test:reliability',
    lines,
    figures,
  };
  writeFileSync(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(out, null, 2)}\n`);
  console.log(
    `\nReliability figures (reliability-results/latest.json):\n${lines.map((l) => `  ${l}`).join('\n')}\n`,
  );
}
