import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * "/proc" or "/sys" when `path` (made absolute) lies under one, else null. Those trees take no
 * new directories, and Node's recursive mkdir loops forever on the ENOENT that /proc answers.
 */
export function pseudoFilesystem(path: string): '/proc' | '/sys' | null {
  if (path === '') return null;
  const full = resolve(path);
  for (const root of ['/proc', '/sys'] as const) {
    if (full === root || full.startsWith(`${root}/`)) return root;
  }
  return null;
}

/**
 * `mkdir -p` that first refuses a path under /proc or /sys, also one reached through a symlink
 * (the real path of its nearest existing ancestor decides). Throws an Error with a one-line message.
 */
export function makeDirectory(path: string, mode: number): void {
  const full = resolve(path);
  let existing = full;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const real = join(realpathSync(existing), relative(existing, full));
  const root = pseudoFilesystem(real);
  if (root) throw new Error(`${full} lies under ${root}, where no directory can be made`);
  mkdirSync(full, { recursive: true, mode });
}
