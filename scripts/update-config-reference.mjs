// Rewrites the configuration reference in README.md from the schema (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { configReference } from '../dist/config/index.js';

const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const from = readme.indexOf(START);
const to = readme.indexOf(END);
if (from === -1 || to === -1) throw new Error('README.md has no config-reference markers');
writeFileSync(
  new URL('../README.md', import.meta.url),
  `${readme.slice(0, from + START.length)}\n${configReference()}${readme.slice(to)}`,
);
