import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configReference } from '../../../src/config/index.js';

describe('configuration reference', () => {
  it('in the README is exactly what the schema generates (run `npm run docs` after changing the schema)', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('<!-- config-reference:start -->\n');
    const end = readme.indexOf('<!-- config-reference:end -->');
    expect(start).toBeGreaterThan(-1);
    expect(readme.slice(start + '<!-- config-reference:start -->\n'.length, end)).toBe(configReference());
  });

  it('describes every key it lists', () => {
    for (const line of configReference().split('\n').slice(2).filter(Boolean)) {
      expect(line.split(' | ')[3]?.trim(), line).not.toBe('');
    }
  });
});
