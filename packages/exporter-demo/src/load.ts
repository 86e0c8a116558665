// A bounded load over loopback HTTP: at most `requests` requests, at most `durationMs` of sending,
// at most `concurrency` in flight. Requests are spread evenly over the duration, so the run shows
// the pool going from healthy to exhausted instead of failing in the first second.
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
  readonly stoppedBy: 'requests' | 'duration';
  /** By status code ("no response" when none came): how many, and the first error message. */
  readonly outcomes: ReadonlyMap<string, Outcome>;
}

export interface Outcome {
  count: number;
  readonly example: string | undefined;
}

export async function runLoad(options: LoadOptions): Promise<LoadSummary> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const started = performance.now();
  const spacingMs = options.durationMs / options.requests;
  const outcomes = new Map<string, Outcome>();
  let next = 1;
  let stoppedBy: LoadSummary['stoppedBy'] = 'requests';

  async function worker(): Promise<void> {
    for (;;) {
      const index = next;
      if (index > options.requests) return;
      const dueAt = started + (index - 1) * spacingMs;
      if (dueAt - started >= options.durationMs || performance.now() - started >= options.durationMs) {
        stoppedBy = 'duration';
        return;
      }
      next++;
      const wait = dueAt - performance.now();
      if (wait > 0) await sleep(wait);
      const result = await request(agent, options, index);
      const label = result.status === undefined ? 'no response' : String(result.status);
      const outcome = outcomes.get(label);
      if (outcome === undefined) outcomes.set(label, { count: 1, example: result.error });
      else outcome.count++;
      options.onResult?.(result);
    }
  }

  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return { sent: next - 1, elapsedMs: performance.now() - started, stoppedBy, outcomes };
}

function request(agent: Agent, options: LoadOptions, index: number): Promise<RequestResult> {
  const path = pathFor(index);
  return new Promise((resolve) => {
    const req = get(`${options.baseUrl}${path}`, { agent, timeout: options.requestTimeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ index, path, status: response.statusCode, error: errorOf(Buffer.concat(chunks)) }));
      response.on('error', (error) => resolve({ index, path, status: response.statusCode, error: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${options.requestTimeoutMs} ms`)));
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
