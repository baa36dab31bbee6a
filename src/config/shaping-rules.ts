import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { ConfigError, errorMessage } from '../shared/index.js';
import { shapingRuleSchema, type Config, type ShapingRuleConfig } from './schema.js';

/** The rules for the big providers that Petrel ships (config/shaping-rules.toml). */
export const SHIPPED_SHAPING_RULES = fileURLToPath(
  new URL('../../config/shaping-rules.toml', import.meta.url),
);

const rulesFile = z.strictObject({ rule: z.array(shapingRuleSchema).default([]) });

/** Reads one rules file (`[[rule]]` tables); throws ConfigError naming the file and the key. */
export function readShapingRules(path: string): ShapingRuleConfig[] {
  let raw: unknown;
  try {
    raw = parseToml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `shaping rules ${path}: ${errorMessage(err).split('\n')[0] ?? 'unreadable'}`,
    );
  }
  const parsed = rulesFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.map(String).join('.') ?? '';
    throw new ConfigError(
      'PETREL_CONFIG_INVALID',
      `shaping rules ${path}: ${where ? `${where}: ` : ''}${issue?.message}`,
    );
  }
  return parsed.data.rule;
}

/**
 * The rules in force, first match wins: the operator's `[[shaping.rule]]`, then the rules file
 * (the shipped one unless `rules_file` names another, or "" for none). An operator's rule with
 * the name of a file's rule replaces it.
 */
export function loadShapingRules(shaping: Config['shaping']): ShapingRuleConfig[] {
  const seen = new Set<string>();
  for (const r of shaping.rule) {
    if (seen.has(r.name))
      throw new ConfigError('PETREL_CONFIG_INVALID', `shaping.rule ${r.name}: name used twice`);
    seen.add(r.name);
  }
  const file = shaping.rules_file === undefined ? SHIPPED_SHAPING_RULES : shaping.rules_file;
  const filed = file === '' ? [] : readShapingRules(resolve(file));
  const names = new Set<string>();
  for (const r of filed) {
    if (names.has(r.name))
      throw new ConfigError(
        'PETREL_CONFIG_INVALID',
        `shaping rules ${file}: rule ${r.name}: name used twice`,
      );
    names.add(r.name);
  }
  return [...shaping.rule, ...filed.filter((r) => !seen.has(r.name))];
}
