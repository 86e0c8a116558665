import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/setup/postgres.ts'],
    // Each test file in its own process: the instrumentation patches modules process-wide.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // CI asks for a machine-readable report too, to print its "N passed, N failed" line.
    reporters: process.env['POOL_LEAK_TEST_REPORT'] ? ['default', 'json'] : ['default'],
    outputFile: process.env['POOL_LEAK_TEST_REPORT'] ? { json: process.env['POOL_LEAK_TEST_REPORT'] } : {},
  },
});
