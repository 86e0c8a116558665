/** Package name, used as the instrumentation scope name. */
export const PACKAGE_NAME = 'opentelemetry-instrumentation-pool-leak';
/** Must equal package.json "version"; src/version.test.ts checks it. */
export const PACKAGE_VERSION = '0.1.0';
