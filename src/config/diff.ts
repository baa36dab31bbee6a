import { defOf, unwrap, type AnySchema } from './reference.js';
import { configSchema, type Config } from './schema.js';

const isTable = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A key as the reference and config errors spell it: quoted where TOML needs quotes. */
const keyOf = (prefix: string, name: string): string => {
  const bare = /^[A-Za-z0-9_-]+$/.test(name) ? name : JSON.stringify(name);
  return prefix ? `${prefix}.${bare}` : bare;
};

function diff(schema: AnySchema, a: unknown, b: unknown, key: string, out: string[]): void {
  const def = defOf(unwrap(schema).core);
  if (def.type === 'object' && isTable(a) && isTable(b)) {
    for (const [name, field] of Object.entries(def.shape!))
      diff(field, a[name], b[name], keyOf(key, name), out);
    return;
  }
  if (def.type === 'record' && isTable(a) && isTable(b)) {
    for (const name of new Set([...Object.keys(a), ...Object.keys(b)]))
      diff(def.valueType!, a[name], b[name], keyOf(key, name), out);
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(key);
}

/**
 * The settings that differ between two configurations, each by its full key (`submission.listen`,
 * `delivery.domain."example.org".rate`; a table added or removed under a record is one key).
 * Arrays and parsed values, like listen addresses, compare as a whole.
 */
export function changedSettings(before: Config, after: Config): string[] {
  const out: string[] = [];
  diff(configSchema as unknown as AnySchema, before, after, '', out);
  return out;
}
