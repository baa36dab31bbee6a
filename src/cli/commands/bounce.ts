import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { classifyMessage, type BounceResult } from '../../bounce/index.js';
import { errorMessage } from '../../shared/index.js';
import { globals, print } from '../context.js';

const COLUMNS = ['file', 'kind', 'recipient', 'status', 'action', 'category', 'reason'] as const;

type Row = Record<(typeof COLUMNS)[number], string | null>;

/** "ENOENT: no such file or directory, open 'x'" → "no such file or directory". */
function reasonOf(err: unknown): string {
  return errorMessage(err)
    .replace(/^[A-Z]+: /, '')
    .replace(/, \w+ '.*'$/, '');
}

/** Expands each path to files (a directory: the regular files directly in it, by name); reports unreadable paths. */
async function expand(
  paths: readonly string[],
  fail: (path: string, err: unknown) => void,
): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    try {
      if (!(await stat(p)).isDirectory()) {
        files.push(p);
        continue;
      }
      const entries = await readdir(p, { withFileTypes: true });
      const names = entries.filter((e) => e.isFile()).map((e) => e.name);
      for (const name of names.sort()) files.push(join(p, name));
    } catch (err) {
      fail(p, err);
    }
  }
  return files;
}

function rowsOf(file: string, results: readonly BounceResult[]): Row[] {
  if (results.length === 0)
    return [
      { file, kind: 'none', recipient: null, status: null, action: null, category: 'none', reason: null },
    ];
  return results.map((r) => ({
    file,
    kind: r.kind,
    recipient: r.recipient,
    status: r.status,
    action: r.action,
    category: r.category,
    reason: r.reason,
  }));
}

export function register(program: Command): void {
  const bounce = program
    .command('bounce')
    .description('bounce and complaint knowledge (offline: no database, no config)');

  bounce
    .command('classify <paths...>')
    .description('classify raw bounce/complaint messages per recipient (a directory: every file in it)')
    .option('--json', 'one JSON object per line and recipient')
    .action(async (paths: string[], opts: { json?: boolean }, cmd: Command) => {
      const json = opts.json === true || globals(cmd).json === true;
      let failed = false;
      const fail = (path: string, err: unknown): void => {
        failed = true;
        process.stderr.write(`petrel: cannot read ${path}: ${reasonOf(err)}\n`);
      };
      const files = await expand(paths, fail);
      if (!json) print(COLUMNS.join('\t'));
      for (const file of files) {
        let raw: Buffer;
        try {
          raw = await readFile(file);
        } catch (err) {
          fail(file, err);
          continue;
        }
        for (const row of rowsOf(file, classifyMessage(raw).results)) {
          print(json ? JSON.stringify(row) : COLUMNS.map((c) => row[c] ?? '-').join('\t'));
        }
      }
      if (failed) process.exitCode = 1;
    });
}
