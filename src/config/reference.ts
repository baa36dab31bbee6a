import { hostname as osHostname } from 'node:os';
import type { z } from 'zod';
import { configSchema } from './schema.js';

interface Row {
  readonly key: string;
  readonly type: string;
  readonly default: string;
  readonly description: string;
}

export type AnySchema = z.core.$ZodType & { description?: string };

interface Def {
  type: string;
  innerType?: AnySchema;
  in?: AnySchema;
  element?: AnySchema;
  valueType?: AnySchema;
  shape?: Record<string, AnySchema>;
  defaultValue?: unknown;
  entries?: Record<string, string>;
  options?: AnySchema[];
}

export const defOf = (s: AnySchema): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Peels defaults, optionals and transforms off a field: what a user writes, and its default. */
export function unwrap(schema: AnySchema): { core: AnySchema; fallback: unknown; hasDefault: boolean } {
  let cur = schema;
  let fallback: unknown;
  let hasDefault = false;
  for (;;) {
    const def = defOf(cur);
    if ((def.type === 'default' || def.type === 'prefault') && !hasDefault) {
      fallback = def.defaultValue;
      hasDefault = true;
      cur = def.innerType!;
    } else if (def.type === 'default' || def.type === 'prefault' || def.type === 'optional')
      cur = def.innerType!;
    else if (def.type === 'pipe') cur = def.in!;
    else return { core: cur, fallback, hasDefault };
  }
}

function typeName(schema: AnySchema): string {
  const def = defOf(schema);
  switch (def.type) {
    case 'array':
      return `array of ${typeName(unwrap(def.element!).core)}`;
    case 'enum':
      return Object.values(def.entries ?? {}).join(' \\| ');
    case 'union':
      return (def.options ?? []).map((o) => typeName(unwrap(o).core)).join(' or ');
    default:
      return def.type;
  }
}

function shown(key: string, value: unknown, hasDefault: boolean): string {
  if (!hasDefault) return '';
  // The embedded default is the machine's own name; the reference must not depend on the machine.
  if (key === 'hostname' && value === osHostname()) return 'the OS host name';
  if (key === 'cluster.node') return 'the OS host name';
  return `\`${JSON.stringify(value)}\``;
}

function walk(schema: AnySchema, prefix: string, rows: Row[]): void {
  const { core } = unwrap(schema);
  const def = defOf(core);
  const fields = def.type === 'object' ? def.shape! : null;
  if (!fields) return;
  for (const [name, field] of Object.entries(fields)) {
    const key = prefix ? `${prefix}.${name}` : name;
    const { core: inner, fallback, hasDefault } = unwrap(field);
    const innerDef = defOf(inner);
    const description = field.description ?? '';
    if (innerDef.type === 'object') {
      walk(field, key, rows);
    } else if (innerDef.type === 'record') {
      rows.push({ key: `[${key}."…"]`, type: 'table', default: '', description });
      walk(innerDef.valueType!, `${key}."…"`, rows);
    } else if (innerDef.type === 'array' && defOf(unwrap(innerDef.element!).core).type === 'object') {
      rows.push({ key: `[[${key}]]`, type: 'array of tables', default: '', description });
      walk(innerDef.element!, key, rows);
    } else {
      rows.push({ key, type: typeName(inner), default: shown(key, fallback, hasDefault), description });
    }
  }
}

/** The configuration reference as a Markdown table, generated from the schema so it cannot drift. */
export function configReference(): string {
  const rows: Row[] = [];
  walk(configSchema as unknown as AnySchema, '', rows);
  const lines = ['| key | type | default | meaning |', '|---|---|---|---|'];
  for (const r of rows)
    lines.push(`| \`${r.key}\` | ${r.type} | ${r.default} | ${r.description.replace(/\|/g, '\\|')} |`);
  return `${lines.join('\n')}\n`;
}
