// Bounded loads over loopback HTTP. The billing load: exactly `requests` requests, spread evenly
// over `durationMs` and sent when due (as users keep coming whether or not the service is stuck),
// at most `concurrency` in flight, so the run shows the pool going from healthy to exhausted
// instead of failing in the first second. The two incidents run beside it in rounds: a fixed set
// of requests at fixed offsets, a fixed number of times. Every load sends all it was planned to
// send, so the numbers announced, counted on the progress bar and summed up agree.
import { Agent, get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** The mix of one cycle of ten requests; request i uses entry (i - 1) % 10. */
const PLAN: readonly ((id: number) => string)[] = [
  (id) => `/orders/${id}`,
  (id) => `/invoices/${id}/export`,
  (id) => `/orders/${id}`,
  (id) => `/reports/${id}`,
  (id) => `/orders/${id}`,
  (id) => `/audit/${id}`,
  (id) => `/invoices/${id}/export`,
  (id) => `/statements/${id}`,
  (id) => `/orders/${id}`,
  (id) => `/reports/${id}`,
];

/** The path of request `index` (1-based). Deterministic, so every run leaks the same way. */
export function pathFor(index: number): string {
  const make = PLAN[(index - 1) % PLAN.length];
  return make === undefined ? `/orders/${index}` : make(index);
}

export interface LoadOptions {
  readonly baseUrl: string;
  readonly requests: number;
  readonly durationMs: number;
  readonly concurrency: number;
  /** A request still unanswered after this long is abandoned and counted as a client timeout. */
  readonly requestTimeoutMs: number;
  readonly onResult?: (result: RequestResult) => void;
}

export interface RequestResult {
  readonly index: number;
  readonly path: string;
  /** Undefined when no response came (connection error, client timeout). */
  readonly status: number | undefined;
  /** The service's error message, or the client-side failure. */
  readonly error: string | undefined;
}

export interface LoadSummary {
  readonly sent: number;
  readonly elapsedMs: number;
  /** By status code ("no response" when none came): how many, and the first error message. */
  readonly outcomes: ReadonlyMap<string, Outcome>;
}

export interface Outcome {
  count: number;
  readonly example: string | undefined;
}

/** One request of a round: its path, and when it goes out after the round started. */
export interface TimedRequest {
  readonly path: string;
  readonly atMs: number;
}

/**
 * Incident (a), a rush: `size` catalog searches at the same moment, far more than the catalog
 * pool has connections. Honest load: every search gives its connection back.
 */
export function catalogRush(round: number, size: number): TimedRequest[] {
  return Array.from({ length: size }, (_, offset) => ({ path: `/catalog/${round * size + offset + 1}`, atMs: 0 }));
}

/**
 * Incident (b): a checkout opens its transaction; two cart views come while it is open (they run
 * on the checkout's connection) and one after it committed (it takes a connection of its own).
 */
export function cartRound(round: number): TimedRequest[] {
  const id = round + 1;
  return [
    { path: `/carts/${id}/checkout`, atMs: 0 },
    { path: `/carts/${id}`, atMs: 40 },
    { path: `/carts/${id}`, atMs: 80 },
    { path: `/carts/${id}`, atMs: 600 },
  ];
}

/**
 * The slow-query holder, once per run: the cart totals query runs past the leak threshold on its
 * own connection and comes back — the report's `slow query (busy)` beside the leak's `leaked (idle)`.
 */
export const SLOW_TOTALS: TimedRequest = { path: '/carts/1/totals', atMs: 0 };

export interface RoundsOptions {
  readonly baseUrl: string;
  readonly rounds: number;
  /** A round starts this long after the previous one started, or when it ended if later. */
  readonly intervalMs: number;
  readonly requestTimeoutMs: number;
  readonly round: (round: number) => readonly TimedRequest[];
  readonly onResult?: (result: RequestResult) => void;
}

/** Sends `rounds` rounds of requests, one round at a time. */
export async function runRounds(options: RoundsOptions): Promise<LoadSummary> {
  // Rounds have the same shape: a socket for every request of one.
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, options.round(0).length) });
  const started = performance.now();
  const outcomes = new Map<string, Outcome>();
  let sent = 0;
  try {
    for (let round = 0; round < options.rounds; round++) {
      const wait = started + round * options.intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
      const begun = performance.now();
      await Promise.all(
        options.round(round).map(async ({ path, atMs }) => {
          const index = ++sent;
          const delay = begun + atMs - performance.now();
          if (delay > 0) await sleep(delay);
          const result = await request(agent, options.baseUrl, options.requestTimeoutMs, index, path);
          count(outcomes, result);
          options.onResult?.(result);
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return { sent, elapsedMs: performance.now() - started, outcomes };
}

/** Sends requests 1 to `requests`, each when due: the last one at most `durationMs` after the start unless all `concurrency` slots are busy. */
export async function runLoad(options: LoadOptions): Promise<LoadSummary> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const started = performance.now();
  const spacingMs = options.durationMs / options.requests;
  const outcomes = new Map<string, Outcome>();
  let next = 1;

  async function worker(): Promise<void> {
    for (;;) {
      const index = next;
      if (index > options.requests) return;
      const dueAt = started + (index - 1) * spacingMs;
      next++;
      const wait = dueAt - performance.now();
      if (wait > 0) await sleep(wait);
      const result = await request(agent, options.baseUrl, options.requestTimeoutMs, index, pathFor(index));
      count(outcomes, result);
      options.onResult?.(result);
    }
  }

  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return { sent: next - 1, elapsedMs: performance.now() - started, outcomes };
}

/** Counts a result under its status code ("no response" when none came). */
function count(outcomes: Map<string, Outcome>, result: RequestResult): void {
  const label = result.status === undefined ? 'no response' : String(result.status);
  const outcome = outcomes.get(label);
  if (outcome === undefined) outcomes.set(label, { count: 1, example: result.error });
  else outcome.count++;
}

function request(agent: Agent, baseUrl: string, timeoutMs: number, index: number, path: string): Promise<RequestResult> {
  return new Promise((resolve) => {
    const req = get(`${baseUrl}${path}`, { agent, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ index, path, status: response.statusCode, error: errorOf(Buffer.concat(chunks)) }));
      response.on('error', (error) => resolve({ index, path, status: response.statusCode, error: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => resolve({ index, path, status: undefined, error: error.message }));
  });
}

function errorOf(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : undefined;
  } catch {
    return 'unreadable response';
  }
}
