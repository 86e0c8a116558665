// A second, real `@opentelemetry/api` copy (1.9.1, installed under the alias
// `opentelemetry-api-1.9`) next to the workspace's 1.10, which this package uses: what the API's
// global registry lets each copy see, and what the mismatch check reports. The registry accepts
// a copy whose minor version is at most the registry's, so it is the NEWER copy that goes blind
// when an application on SDK 2.x (API 1.9) registered first.
import * as api from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { PoolLeakInstrumentation } from '../../src';
import { ApiMismatchCheck, describeApiMismatch, findApiMismatch, versionOfOwnApi } from '../../src/register/api-compat';
import { loadPg, postgresConfig } from '../support/pg';

const api19 = createRequire(import.meta.url)('opentelemetry-api-1.9') as typeof api;
const REGISTRY_KEY = Symbol.for('opentelemetry.js.api.1');

/** Registers a real context manager and tracer provider through `copy`, as an SDK does. */
function registerSdkThrough(copy: typeof api): TracerProvider {
  const provider = new TracerProvider();
  copy.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  copy.trace.setGlobalTracerProvider(provider);
  return provider;
}

/** A diag logger that keeps what it was told. */
function collectingLogger(): api.DiagLogger & { warnings: string[] } {
  const warnings: string[] = [];
  const ignore = () => {};
  return { warnings, warn: (message: string) => warnings.push(message), error: ignore, info: ignore, debug: ignore, verbose: ignore };
}

afterEach(() => {
  for (const copy of [api, api19]) {
    copy.trace.disable();
    copy.context.disable();
    copy.diag.disable();
  }
  // The registry keeps the version of the copy that created it; start each test without one.
  delete (globalThis as Record<symbol, unknown>)[REGISTRY_KEY];
});

describe('findApiMismatch', () => {
  it('a copy that rejects the registry version sees neither registration: both reported, with the version', () => {
    registerSdkThrough(api19);

    // The consequence, for real: a span active through the app's copy is invisible to ours.
    const span = api19.trace.getTracer('app').startSpan('request');
    const seenByOurCopy = api19.context.with(api19.trace.setSpan(api19.context.active(), span), () => api.trace.getActiveSpan());
    span.end();
    expect(span.spanContext().traceId).not.toBe(api.INVALID_TRACEID);
    expect(seenByOurCopy).toBeUndefined();

    const mismatch = findApiMismatch(api);
    expect(mismatch?.unseen).toEqual(['tracer provider', 'context manager']);
    expect(mismatch?.registeredVersion).toBe('1.9.1');
  });

  it('the copy that registered sees everything: nothing to report', () => {
    registerSdkThrough(api);
    expect(findApiMismatch(api)).toBeUndefined();
  });

  it('an older copy accepts what a newer copy registered: nothing to report', () => {
    registerSdkThrough(api);
    expect(findApiMismatch(api19)).toBeUndefined();
  });

  it('nothing registered yet: nothing to report', () => {
    expect(findApiMismatch(api)).toBeUndefined();
  });

  it('only a context manager registered: only that is named', () => {
    api19.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    expect(findApiMismatch(api)?.unseen).toEqual(['context manager']);
  });
});

describe('describeApiMismatch', () => {
  it('names both versions, what breaks and what to do', () => {
    registerSdkThrough(api19);
    const line = describeApiMismatch(findApiMismatch(api)!);
    expect(line).toContain('uses @opentelemetry/api 1.10.0');
    expect(line).toContain('registered through @opentelemetry/api 1.9.1');
    expect(line).toContain('no parent');
    expect(line).toContain('npm ls @opentelemetry/api');
    expect(line).not.toContain('\n');
  });

  it('reads the version of its own copy from that copy', () => {
    expect(versionOfOwnApi()).toBe('1.10.0');
  });
});

describe('ApiMismatchCheck', () => {
  it("reports once, through the registry's diag logger that the blind copy's diag cannot reach", () => {
    const appLogger = collectingLogger();
    api19.diag.setLogger(appLogger, api19.DiagLogLevel.WARN);
    registerSdkThrough(api19);
    const ownDiag = collectingLogger();
    const check = new ApiMismatchCheck(ownDiag, api);

    check.check();
    check.check();

    expect(appLogger.warnings).toHaveLength(1);
    expect(appLogger.warnings[0]).toContain('cannot see the tracer provider and context manager');
    expect(ownDiag.warnings).toEqual([]);
  });

  it('registered after the first check (SDK started after the instrumentation): the second check reports', () => {
    const ownDiag = collectingLogger();
    const check = new ApiMismatchCheck(ownDiag, api);
    check.check();
    expect(ownDiag.warnings).toEqual([]);

    registerSdkThrough(api19);
    check.check();
    check.check();
    expect(ownDiag.warnings).toHaveLength(1);
    expect(ownDiag.warnings[0]).toContain('1.9.1');
  });

  it('the same copy: never reports', () => {
    registerSdkThrough(api);
    const ownDiag = collectingLogger();
    const check = new ApiMismatchCheck(ownDiag, api);
    check.check();
    check.check();
    expect(ownDiag.warnings).toEqual([]);
  });
});

describe('PoolLeakInstrumentation', () => {
  it('an application that registered through a copy ours cannot see: one warning at enable()', () => {
    const appLogger = collectingLogger();
    api19.diag.setLogger(appLogger, api19.DiagLogLevel.WARN);
    registerSdkThrough(api19);

    const instrumentation = new PoolLeakInstrumentation();
    instrumentation.disable();
    instrumentation.enable();
    instrumentation.disable();

    expect(appLogger.warnings).toHaveLength(1);
    expect(appLogger.warnings[0]).toContain('opentelemetry-instrumentation-pool-leak uses @opentelemetry/api 1.10.0');
  });

  it('an SDK registered after the instrumentation was created: the warning comes at the first checkout', async () => {
    const instrumentation = new PoolLeakInstrumentation();
    const appLogger = collectingLogger();
    api19.diag.setLogger(appLogger, api19.DiagLogLevel.WARN);
    registerSdkThrough(api19);
    expect(appLogger.warnings).toEqual([]);

    const pool = new (loadPg().Pool)({ ...postgresConfig(), max: 1 });
    try {
      for (let i = 0; i < 3; i++) (await pool.connect()).release();
    } finally {
      await pool.end();
      instrumentation.disable();
    }
    expect(appLogger.warnings).toHaveLength(1);
    expect(appLogger.warnings[0]).toContain('registered through @opentelemetry/api 1.9.1');
  });
});
