import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The reliability suite has its own run: npm run test:reliability (vitest.reliability.config.ts).
    exclude: ['test/reliability/**', '**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // CI reads the JSON report for its closing "N passed, N failed" line.
    reporters: process.env['CI']
      ? ['default', ['json', { outputFile: process.env['PETREL_TEST_RESULTS'] ?? 'test-results.json' }]]
      : ['default'],
  },
});
