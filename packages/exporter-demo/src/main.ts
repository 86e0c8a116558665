// `npm run demo`: a real PostgreSQL, a service with a leaking error path, and the report of who
// holds the pool when it runs dry.
import { leakReport, tracerProvider } from './tracing';
import { startPostgres } from './postgres-server';
import { createService } from './service';

const REQUESTS = 12;

async function main(): Promise<void> {
  const log = (line: string) => console.log(`[demo] ${line}`);
  const server = await startPostgres({ progress: log });
  const service = createService({ ...server, poolSize: 3 });
  try {
    let failures = 0;
    for (let i = 1; i <= REQUESTS; i++) {
      const route = i % 2 === 0 ? '/orders' : '/invoices';
      try {
        await service.handle<unknown>(route, () => (route === '/orders' ? service.placeOrder(i) : service.exportInvoice(i)));
      } catch (error) {
        failures++;
        log(`request ${i} ${route} failed: ${(error as Error).message}`);
      }
      process.stdout.write(`\r[demo] requests ${i}/${REQUESTS}`);
    }
    process.stdout.write('\n');
    log(`${failures} of ${REQUESTS} requests failed; pool: ${service.pool.totalCount} open, ${service.pool.idleCount} idle`);
  } finally {
    // Ends the leases that are still open (status ERROR) so that they are exported.
    await tracerProvider.shutdown();
    // pool.end() waits for every client, and leaked ones never come back: give it a moment only.
    await Promise.race([service.pool.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 200).unref())]);
    await server.stop();
  }
  console.log(`\n${leakReport.format()}`);
}

main().catch((error: unknown) => {
  console.error('[demo] failed:', error);
  process.exitCode = 1;
});
