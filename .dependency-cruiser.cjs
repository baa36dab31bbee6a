/** Module boundaries of STYLE.md §3, checked in CI (`npm run boundaries`). */
module.exports = {
  forbidden: [
    {
      name: 'shared-is-a-leaf',
      comment: 'shared imports nothing internal; everything may import it.',
      severity: 'error',
      from: { path: '^src/shared/' },
      to: { path: '^src/', pathNot: '^src/shared/' },
    },
    {
      name: 'config-logging-metrics-import-only-shared',
      severity: 'error',
      from: { path: '^src/(config|logging|metrics)/' },
      to: { path: '^src/', pathNot: ['^src/shared/', '^src/$1/', '^src/version\\.ts$'] },
    },
    {
      name: 'pure-knowledge-imports-only-shared',
      comment: 'bounce, dkim and verp are pure: delivery, inbound and the CLI all use them.',
      severity: 'error',
      from: { path: '^src/(bounce|dkim|verp)/' },
      to: { path: '^src/', pathNot: ['^src/shared/', '^src/$1/'] },
    },
    {
      name: 'delivery-returns-outcomes',
      comment: 'delivery classifies replies with bounce and never writes the spool.',
      severity: 'error',
      from: { path: '^src/delivery/' },
      to: { path: '^src/', pathNot: ['^src/shared/', '^src/bounce/', '^src/config/', '^src/delivery/'] },
    },
    {
      name: 'only-spool-talks-sql',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/spool/' },
      to: { path: 'node_modules/(better-sqlite3|pg|pg-[a-z-]+)/' },
    },
    {
      name: 'only-cluster-talks-redis',
      comment: 'cluster-wide shaping is the one user of Redis; the rest sees Throttle and SharedCounters.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cluster/' },
      to: { path: 'node_modules/ioredis' },
    },
    {
      name: 'nothing-imports-cli-or-main',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/cli/', '^src/main\\.ts$'] },
      to: { path: ['^src/cli/', '^src/main\\.ts$'] },
    },
    {
      name: 'config-load-only-at-the-root',
      comment: 'other modules receive their typed slice of the configuration.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/cli/', '^src/main\\.ts$', '^src/config/'] },
      to: { path: '^src/config/load\\.ts$' },
    },
    {
      name: 'folders-through-their-index',
      comment: 'each domain folder exposes index.ts; other folders import only that file.',
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
