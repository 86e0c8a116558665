// The register entry's exit when telemetry cannot be delivered, in real processes on the
// application's own SDK of either generation (2.x: sdk-node 0.209, 3.x: 0.301), over both OTLP/HTTP
// encodings, against a loopback collector that refuses, never answers, or answers 400, 429 or 503
// (the last two make the SDK's exporters retry). Each run must end well before the SDK's own
// timeouts and retries would have let it (up to ~42 s measured before), and say in exactly one
// stderr line where the telemetry did not go and why. Wall times are printed, and only bounded
// generously: the machine running this is shared.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCollector, type CollectorAnswer, type LoopbackCollector } from './support/loopback-collector';
import { startNode, type Ended } from './support/node-process';
import { installSdkApps, type SdkApps, type SdkGeneration } from './support/sdk-app';
import { limiter } from './support/limiter';

const FIXTURE = 'test/fixtures/register-exit-server.cjs';
const APP = 'register-exit-server.cjs';
const READY = 'register-exit-server: ready';
const ENTRY = 'opentelemetry-instrumentation-pool-leak/register';
/** The line the entry writes when the application has no request instrumentation installed. */
const REQUEST_PARENTS_HINT = 'checkout spans have no request around them';
/**
 * The bound asserted: far under what the SDK's exporters would take on their own (one 10 s
 * timeout per export, five attempts with back-off for 429/503), far over the ~1 s the entry
 * should need, so a loaded machine does not fail it.
 */
const EXIT_BOUND_MS = 10_000;
/** The entry's cap on a wait that keeps making progress; a wait without progress stops well before. */
const SHUTDOWN_CAP_MS = 5_000;
const RUN_TIMEOUT_MS = 40_000;
const TEST_TIMEOUT_MS = 600_000;

const GENERATIONS: readonly SdkGeneration[] = ['2.x', '3.x'];
const PROTOCOLS = ['http/protobuf', 'http/json'] as const;
const ANSWERS: readonly CollectorAnswer[] = ['refused', 'hang', 400, 429, 503];
const ENDINGS = ['SIGTERM', 'normal exit'] as const;
type Ending = (typeof ENDINGS)[number];
type Preload = '-r' | '--import';
/** Both ways to preload the entry, one per encoding, so the matrix stays small. */
const PRELOAD = { 'http/protobuf': '-r', 'http/json': '--import' } as const satisfies Record<(typeof PROTOCOLS)[number], Preload>;

/** What the stderr line must say for each collector answer. */
const WHY: Record<string, RegExp> = {
  refused: /connection refused \(ECONNREFUSED\)/,
  hang: /no answer within \d+ ms/,
  '400': /HTTP 400/,
  '429': /HTTP 429/,
  '503': /HTTP 503/,
};

/** Child processes at once: two cores are shared with the other test files. */
const PARALLEL = 2;
const slot = limiter(PARALLEL);

let apps: SdkApps;
const timings: string[] = [];

beforeAll(async () => {
  apps = await installSdkApps([FIXTURE]);
}, 300_000);

afterAll(async () => {
  console.log(['[register-exit] ms from SIGTERM / from the app being done to the end of the process:', ...timings.sort()].join('\n'));
  await apps?.remove();
}, 120_000);

interface ExitRun {
  readonly run: Ended;
  readonly ms: number;
  readonly collector: LoopbackCollector;
  /** The stderr lines of the entry other than the request-parents hint. */
  readonly lines: string[];
}

/** Starts the app against a collector answering `answer`, ends it as `ending` says, and times the end. */
async function exitRun(
  generation: SdkGeneration,
  preload: Preload,
  answer: CollectorAnswer,
  ending: Ending,
  env: Record<string, string> = {},
): Promise<ExitRun> {
  return slot(async () => {
    const collector = await startCollector(answer);
    try {
      const app = startNode([preload, ENTRY, APP], {
        cwd: apps.dirs[generation],
        timeoutMs: RUN_TIMEOUT_MS,
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, OTEL_SERVICE_NAME: 'register-exit', APP_MODE: ending === 'SIGTERM' ? 'server' : 'job', ...env },
      });
      await app.stdoutLine(READY);
      const started = performance.now();
      if (ending === 'SIGTERM') app.kill('SIGTERM');
      const run = await app.ended;
      const ms = performance.now() - started;
      const lines = run.stderr.split('\n').filter((line) => line.trim() !== '' && !line.includes(REQUEST_PARENTS_HINT));
      return { run, ms, collector, lines };
    } finally {
      await collector.close();
    }
  });
}

/** The process ended as it would without the entry: by the signal, or with code 0. */
function expectEndedAsWithoutEntry(result: ExitRun, ending: Ending): void {
  const { run } = result;
  if (ending === 'SIGTERM') {
    expect(run.signal, run.context).toBe('SIGTERM');
  } else {
    expect(run.signal, run.context).toBeNull();
    expect(run.code, run.context).toBe(0);
  }
  expect(run.stdout, run.context).toBe(`${READY}\n`);
}

/** Exactly one line from the entry, naming the collector's URL and `why`. */
function expectOneLine(result: ExitRun, why: RegExp): string {
  const { run, lines, collector } = result;
  expect(lines, run.context).toHaveLength(1);
  const line = lines[0] ?? '';
  expect(line, run.context).toMatch(new RegExp(`^${escape(ENTRY)}: telemetry was not delivered to ${escape(collector.endpoint)}/v1/(traces|metrics): `));
  expect(line, run.context).toMatch(why);
  return line;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const ROWS = GENERATIONS.flatMap((generation) =>
  PROTOCOLS.flatMap((protocol) => ANSWERS.flatMap((answer) => ENDINGS.map((ending) => ({ generation, protocol, answer, ending })))),
);

describe.concurrent('register entry: the exit when the collector does not take the telemetry', () => {
  it.each(ROWS.map((row) => [`SDK ${row.generation}, ${PRELOAD[row.protocol]} register, ${row.protocol}, collector ${row.answer === 'hang' ? 'never answers' : row.answer === 'refused' ? 'refuses' : `answers ${row.answer}`}, ${row.ending}`, row] as const))(
    '%s: ends within the bound, as it would have, with one stderr line saying what happened',
    async (title, { generation, protocol, answer, ending }) => {
      const result = await exitRun(generation, PRELOAD[protocol], answer, ending, { OTEL_EXPORTER_OTLP_PROTOCOL: protocol });
      timings.push(`${title}: ${Math.round(result.ms)} ms — ${result.lines.join(' | ')}`);
      const line = expectOneLine(result, WHY[String(answer)] ?? /$^/);

      expectEndedAsWithoutEntry(result, ending);
      expect(result.ms, result.run.context).toBeLessThan(EXIT_BOUND_MS);
      const gaveUp = /gave up after (\d+) ms/.exec(line);
      if (answer === 400) {
        // Not retryable: the shutdown ends at once with the failure; nothing is given up.
        expect(gaveUp, result.run.context).toBeNull();
      } else {
        // Nothing succeeded, so the wait stopped on the no-progress budget, not on the cap.
        expect(Number(gaveUp?.[1]), result.run.context).toBeLessThan(SHUTDOWN_CAP_MS);
      }
    },
    TEST_TIMEOUT_MS,
  );

  // A batch is full (512 spans) while the application still runs, so exports start then and the
  // exporters retry them on 429/503 while the application has finished: those retries must not
  // hold the process (before: each batch's retries in turn, ~42 s with the defaults). The export
  // the application's own span.end() started is bounded by the exporter timeout (3 s here).
  it.each(GENERATIONS.flatMap((generation) => ([429, 503] as const).map((answer) => [`SDK ${generation}, collector answers ${answer}`, generation, answer] as const)))(
    '%s to exports started while the app ran (3,000 spans): the retries do not hold the exit, the line counts them',
    async (title, generation, answer) => {
      const result = await exitRun(generation, '-r', answer, 'normal exit', { APP_SPANS: '3000', OTEL_EXPORTER_OTLP_TIMEOUT: '3000' });
      timings.push(`${title}, 3,000 spans: ${Math.round(result.ms)} ms — ${result.lines.join(' | ')}`);
      const line = expectOneLine(result, new RegExp(`HTTP ${answer} \\((\\d+) requests failed\\)`));

      expectEndedAsWithoutEntry(result, 'normal exit');
      expect(result.ms, result.run.context).toBeLessThan(EXIT_BOUND_MS);
      const counted = Number(/\((\d+) requests failed\)/.exec(line)?.[1]);
      const received = result.collector.requests('/v1/traces') + result.collector.requests('/v1/metrics');
      expect(counted, `${result.run.context}the exporters retried`).toBeGreaterThanOrEqual(2);
      expect(counted, `${result.run.context}the collector received ${received}`).toBeLessThanOrEqual(received);
    },
    TEST_TIMEOUT_MS,
  );
});
