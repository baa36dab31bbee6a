import { defineConfig } from 'vitest/config';

// The reliability and security suite (test/reliability, cases of RELIABILITY.md): real daemons,
// strace, fiu-run, tmpfs and a kill -9 loop. Run with `npm run test:reliability`; `npm test`
// leaves it out. It writes its figures to reliability-results/latest.json.
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    globalSetup: ['test/reliability/figures-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One file at a time: several files start daemons under strace or kill loops on a small machine.
    fileParallelism: false,
    reporters: process.env['CI']
      ? ['default', ['json', { outputFile: 'reliability-test-results.json' }]]
      : ['default'],
  },
});
