// What the OTLP exporters' HTTP requests did while the process was ending: where they went,
// whether anything answered, and why not. Read from Node's HTTP client diagnostics channels, so
// it works with the exporters of either SDK generation without touching their internals, and
// costs nothing before the exit (the channels are subscribed to only then).
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { ShutdownOutcome } from './shutdown';

/** Both SDK generations' OTLP/HTTP exporters send `OTel-OTLP-Exporter-JavaScript/<version>`. */
const EXPORTER_USER_AGENT = 'OTel-OTLP-Exporter-JavaScript';

const REQUEST_START = 'http.client.request.start';
const REQUEST_ERROR = 'http.client.request.error';
const RESPONSE_FINISH = 'http.client.response.finish';

interface RequestMessage {
  readonly request?: ClientRequest;
}
interface ErrorMessage extends RequestMessage {
  readonly error?: { code?: unknown; message?: unknown };
}
interface ResponseMessage extends RequestMessage {
  readonly response?: IncomingMessage;
}

/**
 * Keeps exports from holding the process open once the application is done, so that it reaches
 * `beforeExit` (and the bounded exit flush) instead of waiting out every buffered batch's export
 * timeout (10 s each; 2,000 checkouts took 32-34 s to exit with nothing listening):
 *
 * - the socket of each exporter request is unref'd (a collector that accepts and never answers);
 * - after an exporter request failed, timed out or was answered, the timers that the SDK sets in
 *   reaction are unref'd: the exporter's retry back-off (429, 502, 503, 504, refused: five
 *   attempts per batch, 1-5 s apart, which held the exit ~42 s for a few batches) and the batch
 *   processor's timeout for the next batch. `setTimeout` is wrapped from the failure until the promise jobs it set off have run
 *   (the microtask queue drained once), which is where the SDK creates those timers. Nothing of
 *   the application runs in that window: Node runs the next timer or I/O callback only after it.
 *
 * Not reachable this way: the processor's timer of a batch whose export the application's own
 * `span.end()` started (it is created in the application's call). That one export, retries
 * included, can still hold the exit for up to the exporter timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`,
 * 10 s): the exporter retries only within it.
 *
 * While the application runs, its own work keeps the process alive and exports retry exactly as
 * before. Costs one channel message per HTTP client request.
 */
export function releaseExportsAtExit(): void {
  subscribe(REQUEST_START, (message) => {
    const { request } = message as RequestMessage;
    if (!isExporterRequest(request)) return;
    // The start is published once the request has its socket (a new or a reused one).
    if (request.socket !== null) request.socket.unref();
    else request.once('socket', (socket) => socket.unref());
    // The exporter's own timeout listener was added first, so it has settled the export when this
    // one runs; the work that follows (the next batch, with the processor's timer) is in the window.
    request.once('timeout', unrefTimersUntilNextTurn);
  });
  subscribe(REQUEST_ERROR, (message) => {
    if (isExporterRequest((message as RequestMessage).request)) unrefTimersUntilNextTurn();
  });
  // An answer (a 429 or 503 above all) is judged when its body has been read: the exporter's own
  // 'end' listener, added when the response arrived, runs before this one, and the retry timer it
  // sets in reaction (back-off 1-5 s, up to five attempts per batch) falls in the window.
  subscribe(RESPONSE_FINISH, (message) => {
    const { request, response } = message as ResponseMessage;
    if (isExporterRequest(request) && response !== undefined) response.once('end', unrefTimersUntilNextTurn);
  });
}

let unrefWindowOpen = false;

function unrefTimersUntilNextTurn(): void {
  if (unrefWindowOpen) return;
  const original = globalThis.setTimeout;
  const unrefing = function setTimeoutUnrefd(this: unknown, ...args: Parameters<typeof setTimeout>): NodeJS.Timeout {
    const timer = original.apply(this, args);
    timer.unref();
    return timer;
  } as typeof setTimeout;
  // `util.promisify(setTimeout)` and other properties keep working.
  Object.defineProperties(unrefing, Object.getOwnPropertyDescriptors(original));
  unrefWindowOpen = true;
  globalThis.setTimeout = unrefing;
  // A tick queued from a promise job runs once the microtask queue is empty, before Node moves on
  // to any other callback (a timer of the application, its I/O).
  queueMicrotask(() =>
    process.nextTick(() => {
      unrefWindowOpen = false;
      // Someone who replaced it meanwhile (a fake-timer library) keeps theirs.
      if (globalThis.setTimeout === unrefing) globalThis.setTimeout = original;
    }),
  );
}

/** Why telemetry did not leave, in words a user acts on. */
export interface DeliveryFailure {
  /** The collector URL the exporter sent to, e.g. `http://127.0.0.1:4318/v1/traces`. */
  readonly where: string;
  /** `connection refused (ECONNREFUSED)`, `HTTP 503 (4 requests failed)`, `no answer within 1000 ms`, ... */
  readonly why: string;
}

export interface DeliveryWatch {
  /**
   * When the exports last made progress (`performance.now()`), or undefined: a request delivered,
   * or one sent to a URL with no failure since its last delivery and nothing else in flight (a
   * first try, which may take a while to prepare: SDK 2.x loads `http` on its first export).
   * Retries, and requests behind one still unanswered, are not progress.
   */
  lastProgressAt(): number | undefined;
  /**
   * The endpoint whose telemetry did not arrive (traces first): its last request failed, or, with
   * `includeWaiting` (the wait was given up), one of its requests is still unanswered. Undefined
   * when every endpoint's last request was delivered.
   */
  undelivered(includeWaiting: boolean): DeliveryFailure | undefined;
  stop(): void;
}

/** What is known about one collector URL; kept small, so a long retry loop grows nothing. */
interface EndpointRecord {
  readonly url: string;
  /** Requests sent and not answered yet, with when each started (`performance.now()`). */
  readonly waiting: Map<ClientRequest, number>;
  /** Requests that failed since the last one that was delivered. */
  failures: number;
  /** Why the latest of them failed. */
  lastWhy: string | undefined;
}

/** Traces, metrics and logs, over one or two encodings: more URLs than this are not tracked. */
const MAX_ENDPOINTS = 8;
const TRACES_PATH = /\/v1\/traces$/;

function isExporterRequest(request: ClientRequest | undefined): request is ClientRequest {
  if (request === undefined) return false;
  const agent = request.getHeader('user-agent');
  return typeof agent === 'string' && agent.includes(EXPORTER_USER_AGENT);
}

function urlOf(request: ClientRequest): string {
  const host = request.getHeader('host');
  return `${request.protocol}//${typeof host === 'string' ? host : request.host}${request.path}`;
}

function describeError(error: ErrorMessage['error']): string {
  const code = typeof error?.code === 'string' ? error.code : undefined;
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host not found (${code})`;
  if (code !== undefined) return code;
  return typeof error?.message === 'string' ? error.message : 'request failed';
}

/**
 * Starts watching the exporters' requests, for the rest of the process (or until `stop()`): the
 * line at the exit must also know about exports that failed while the application ran. Costs one
 * header read per HTTP client request of the process.
 */
export function watchDelivery(): DeliveryWatch {
  const endpoints = new Map<string, EndpointRecord>();
  const byRequest = new WeakMap<ClientRequest, EndpointRecord>();
  let lastProgressAt: number | undefined;

  const recordOf = (request: ClientRequest): EndpointRecord | undefined => {
    const url = urlOf(request);
    let record = endpoints.get(url);
    if (record === undefined && endpoints.size < MAX_ENDPOINTS) {
      record = { url, waiting: new Map(), failures: 0, lastWhy: undefined };
      endpoints.set(url, record);
    }
    return record;
  };
  const fail = (record: EndpointRecord, why: string): void => {
    record.failures++;
    record.lastWhy = why;
  };

  const onStart = (message: unknown): void => {
    const { request } = message as RequestMessage;
    if (!isExporterRequest(request)) return;
    const record = recordOf(request);
    if (record === undefined) return;
    byRequest.set(request, record);
    const now = performance.now();
    if (record.failures === 0 && record.waiting.size === 0) lastProgressAt = now;
    record.waiting.set(request, now);
  };
  const onError = (message: unknown): void => {
    const { request, error } = message as ErrorMessage;
    const record = request === undefined ? undefined : byRequest.get(request);
    if (record === undefined || request === undefined || !record.waiting.delete(request)) return;
    // A request the exporter abandons on its own timeout ends in an error too; name the timeout.
    fail(record, waitedTooLong(error) ? 'no answer before the exporter timed out' : describeError(error));
  };
  const onResponse = (message: unknown): void => {
    const { request, response } = message as ResponseMessage;
    const record = request === undefined ? undefined : byRequest.get(request);
    if (record === undefined || request === undefined || !record.waiting.delete(request)) return;
    const status = response?.statusCode ?? 0;
    if (status >= 200 && status < 300) {
      lastProgressAt = performance.now();
      record.failures = 0;
      record.lastWhy = undefined;
    } else {
      fail(record, `HTTP ${status}`);
    }
  };
  subscribe(REQUEST_START, onStart);
  subscribe(REQUEST_ERROR, onError);
  subscribe(RESPONSE_FINISH, onResponse);

  /** The failures since the last delivery are the story; an unanswered request only when nothing failed. */
  const describe = (record: EndpointRecord, includeWaiting: boolean): string | undefined => {
    if (record.failures > 0) return record.failures === 1 ? record.lastWhy : `${record.lastWhy} (${record.failures} requests failed)`;
    if (!includeWaiting || record.waiting.size === 0) return undefined;
    const oldest = Math.min(...record.waiting.values());
    return `no answer within ${Math.round(performance.now() - oldest)} ms`;
  };

  return {
    lastProgressAt: () => lastProgressAt,
    undelivered: (includeWaiting) => {
      let found: DeliveryFailure | undefined;
      for (const record of endpoints.values()) {
        const why = describe(record, includeWaiting);
        if (why === undefined) continue;
        if (TRACES_PATH.test(record.url)) return { where: record.url, why };
        found ??= { where: record.url, why };
      }
      return found;
    },
    stop: () => {
      unsubscribe(REQUEST_START, onStart);
      unsubscribe(REQUEST_ERROR, onError);
      unsubscribe(RESPONSE_FINISH, onResponse);
      endpoints.clear();
    },
  };
}

function waitedTooLong(error: ErrorMessage['error']): boolean {
  return typeof error?.message === 'string' && /socket hang up|timed out/i.test(error.message) && error.code === 'ECONNRESET';
}

/** The endpoint the exporters were configured with, for when no request was seen. */
function configuredEndpoint(env: Readonly<Record<string, string | undefined>>): string {
  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  return endpoint !== undefined && endpoint.trim() !== '' ? endpoint.trim() : 'http://localhost:4318 (the default endpoint)';
}

/**
 * The one stderr line after an exit or signal whose telemetry did not all arrive: where to, why,
 * and, when the wait was given up, after how long (the process did not wait for the exporters'
 * own timeouts and retries). Undefined when there is nothing to say: the shutdown succeeded and
 * no exporter request was left failed.
 */
export function describeUndelivered(
  outcome: ShutdownOutcome,
  seen: DeliveryFailure | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | undefined {
  const where = seen?.where ?? configuredEndpoint(env);
  if (!outcome.settled) {
    const waited = Math.round(outcome.waitedMs);
    const why = seen?.why ?? `no export finished within ${waited} ms`;
    return `telemetry was not delivered to ${where}: ${why}; gave up after ${waited} ms so the process could end.`;
  }
  if (seen !== undefined) return `telemetry was not delivered to ${where}: ${seen.why}.`;
  if (!('error' in outcome)) return undefined;
  const error = outcome.error as { message?: unknown } | undefined;
  return `telemetry was not delivered to ${where}: ${typeof error?.message === 'string' ? error.message : String(outcome.error)}.`;
}
