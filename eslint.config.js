import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'var/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ group: ['better-sqlite3'], message: 'Only src/spool talks to SQLite.' }],
        },
      ],
    },
  },
  {
    files: ['src/spool/**/*.ts', 'test/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // The process (signals, exit codes, environment) belongs to the CLI and main.ts.
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**', 'src/main.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'Only src/cli and src/main.ts touch process.' },
      ],
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'node:process', message: 'Only src/cli and src/main.ts touch process.' }],
          patterns: [{ group: ['better-sqlite3'], message: 'Only src/spool talks to SQLite.' }],
        },
      ],
    },
  },
  {
    files: ['src/spool/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [{ name: 'node:process', message: 'Only src/cli and src/main.ts touch process.' }] },
      ],
    },
  },
  {
    // better-sqlite3 12 on Node 24 aborts when one of its native objects is collected: every
    // connection is opened through openSqlite (src/spool/db.ts), which keeps them all.
    files: ['**/*.ts', '**/*.mjs'],
    ignores: ['src/spool/db.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value='better-sqlite3'][importKind!='type']",
          message:
            'Open SQLite with openSqlite (src/spool/db.ts): it keeps native objects from the collector.',
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { ...globals.node } },
  },
);
