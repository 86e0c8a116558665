'use strict';
// A small service whose pg pool leaks, set up as an operator would run it: NodeSDK with the
// pool-leak instrumentation and `@opentelemetry/exporter-prometheus` as its metric reader,
// serving /metrics on 127.0.0.1:$METRICS_PORT. What it does, in order:
//   1. a connection checked out in one request is used by another request (foreign context),
//      then returned;
//   2. `exportInvoice` checks out twice and never gives back: the pool (max 2) is full, and
//      both leases pass the leak threshold;
//   3. every second `loadReport` asks for a connection, waits past the wait threshold
//      (stalled) and fails with pg-pool's timeout (the pool is exhausted).
// Prints "metrics ready" once the endpoint serves, "leaked" once step 2 is done. Exits by itself
// after $APP_LIFETIME_MS so a runner that dies never leaves it behind. Connection settings come
// from the PG* variables; stdout carries those two lines only.
const { trace } = require('@opentelemetry/api');
const { PrometheusExporter } = require('@opentelemetry/exporter-prometheus');
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');

const port = Number(process.env.METRICS_PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('leaky-metrics-app: set METRICS_PORT to the port /metrics should listen on\n');
  process.exit(2);
}
const lifetimeMs = Number(process.env.APP_LIFETIME_MS ?? 120_000);
// Far above the borrowed connection's few milliseconds, even on a loaded machine: only the leak is one.
const LEAK_THRESHOLD_MS = 1000;
const CHECKOUT_TIMEOUT_MS = 1500;
const REPORT_INTERVAL_MS = 1000;

/** Spans must be recorded for the foreign-context check (it compares traces); none is exported. */
const discardSpans = { onStart() {}, onEnd() {}, forceFlush: async () => {}, shutdown: async () => {} };

const exporter = new PrometheusExporter({ host: '127.0.0.1', port }, (error) => {
  if (error) {
    process.stderr.write(`leaky-metrics-app: /metrics did not start on 127.0.0.1:${port}: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write('metrics ready\n');
});
const sdk = new NodeSDK({
  serviceName: 'leaky-metrics-app',
  instrumentations: [new PoolLeakInstrumentation({ leakThresholdMs: LEAK_THRESHOLD_MS })],
  spanProcessors: [discardSpans],
  metricReaders: [exporter],
  logRecordProcessors: [],
});
sdk.start();

// Only now: the SDK is running, so pg-pool is patched when pg loads it.
const pg = require('pg');
const tracer = trace.getTracer('leaky-metrics-app');
const pool = new pg.Pool({ max: 2, connectionTimeoutMillis: CHECKOUT_TIMEOUT_MS });
// A leaked client whose server connection ends when the app is stopped must not crash it.
pool.on('error', () => {});

const inRequest = (name, work) => tracer.startActiveSpan(name, (span) => work().finally(() => span.end()));

/** Checks a client out in one request; the caller hands it to another. */
async function borrowForAudit() {
  return pool.connect();
}

/** The leak: the client is never released. */
async function exportInvoice() {
  const client = await pool.connect();
  await client.query('SELECT 1 AS invoice');
}

/** An honest checkout that cannot get a connection while the pool is held by the leaks. */
async function loadReport() {
  const client = await pool.connect();
  client.release();
}

async function main() {
  const borrowed = await inRequest('GET /orders', borrowForAudit);
  await inRequest('GET /audit', () => borrowed.query('SELECT 1 AS audit'));
  borrowed.release();
  await inRequest('POST /invoices', exportInvoice);
  await inRequest('POST /invoices', exportInvoice);
  process.stdout.write('leaked\n');
  const reports = setInterval(() => {
    inRequest('GET /report', loadReport).catch(() => {
      // The timeout is the point: pg-pool fails the checkout, the instrumentation counts it.
    });
  }, REPORT_INTERVAL_MS);
  setTimeout(() => {
    clearInterval(reports);
    process.stderr.write(`leaky-metrics-app: lifetime of ${lifetimeMs} ms is over, exiting\n`);
    process.exit(0);
  }, lifetimeMs).unref();
  // Keeps the process alive until its lifetime is over (the interval alone would, too).
  await new Promise((resolve) => setTimeout(resolve, lifetimeMs));
}

main().catch((error) => {
  process.stderr.write(`leaky-metrics-app failed: ${error?.stack ?? error}\n`);
  process.exit(1);
});
