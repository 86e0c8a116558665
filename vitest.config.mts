import { defineConfig } from 'vitest/config';

const reportFile = process.env['POOL_LEAK_TEST_REPORT'];

export default defineConfig({
  test: {
    globalSetup: ['test/setup/postgres.ts', 'test/setup/mariadb.ts', 'test/setup/redis.ts'],
    // Each test file in its own process: the instrumentation patches modules process-wide.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // CI asks for a machine-readable report too, to print its "N passed, N failed" line.
    reporters: reportFile ? ['default', 'json'] : ['default'],
    outputFile: reportFile ? { json: reportFile } : {},
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
        },
      },
      {
        // Node 24 runs AsyncLocalStorage on AsyncContextFrame; Node 22 on async_hooks. Checkin
        // classification and the foreign-context check depend on the context manager, so they
        // run under both.
        extends: true,
        test: {
          name: 'async-hooks-context',
          include: [
            'packages/instrumentation-pool-leak/test/core/checkin-events.test.ts',
            'packages/instrumentation-pool-leak/test/core/leak.test.ts',
            'packages/instrumentation-pool-leak/test/core/foreign-context.test.ts',
          ],
          execArgv: ['--no-async-context-frame'],
        },
      },
    ],
  },
});
