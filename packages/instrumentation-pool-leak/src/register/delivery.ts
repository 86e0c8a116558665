// What the OTLP exporters' HTTP requests did while the process was ending: where they went,
// whether anything answered, and why not. Read from Node's HTTP client diagnostics channels, so
// it works with the exporters of either SDK generation without touching their internals, and
// costs nothing before the exit (the channels are subscribed to only then).
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';

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
 * - after an exporter request failed or timed out, the timers that the SDK sets in reaction are
 *   unref'd: the exporter's retry back-off and the batch processor's timeout for the next
 *   batch. `setTimeout` is wrapped from the failure until the promise jobs it set off have run
 *   (the microtask queue drained once), which is where the SDK creates those timers. Nothing of
 *   the application runs in that window: Node runs the next timer or I/O callback only after it.
 *
 * Not reachable this way: the processor's timer of a batch whose export the application's own
 * `span.end()` started (it is created in the application's call). That one export can still
 * hold the exit for up to the exporter timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s).
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
  /** `connection refused (ECONNREFUSED)`, `HTTP 503`, `no answer within 1000 ms`, ... */
  readonly why: string;
}

export interface DeliveryWatch {
  /** When an export last succeeded (`performance.now()`), or undefined. */
  lastSuccessAt(): number | undefined;
  /** The failure seen, or, given `waitedMs`, the requests that got no answer in that time. */
  failure(waitedMs: number): DeliveryFailure | undefined;
  stop(): void;
}

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
 * Starts watching the exporters' requests. Everything is kept in a few variables (the latest
 * failure, the set of requests still waiting), so a long retry loop grows nothing.
 */
export function watchDelivery(): DeliveryWatch {
  const waiting = new Set<ClientRequest>();
  let lastSuccessAt: number | undefined;
  let lastFailure: DeliveryFailure | undefined;
  let lastUrl: string | undefined;

  const onStart = (message: unknown): void => {
    const { request } = message as RequestMessage;
    if (!isExporterRequest(request)) return;
    waiting.add(request);
    lastUrl = urlOf(request);
  };
  const onError = (message: unknown): void => {
    const { request, error } = message as ErrorMessage;
    if (!isExporterRequest(request)) return;
    waiting.delete(request);
    // A request the exporter abandons on its own timeout ends in an error too; name the timeout.
    const why = waitedTooLong(error) ? 'no answer before the exporter timed out' : describeError(error);
    lastFailure = { where: urlOf(request), why };
  };
  const onResponse = (message: unknown): void => {
    const { request, response } = message as ResponseMessage;
    if (!isExporterRequest(request)) return;
    waiting.delete(request);
    const status = response?.statusCode ?? 0;
    if (status >= 200 && status < 300) lastSuccessAt = performance.now();
    else lastFailure = { where: urlOf(request), why: `HTTP ${status}` };
  };
  subscribe(REQUEST_START, onStart);
  subscribe(REQUEST_ERROR, onError);
  subscribe(RESPONSE_FINISH, onResponse);

  return {
    lastSuccessAt: () => lastSuccessAt,
    failure: (waitedMs) => {
      if (waiting.size > 0 && lastUrl !== undefined) return { where: lastUrl, why: `no answer within ${Math.round(waitedMs)} ms` };
      return lastFailure;
    },
    stop: () => {
      unsubscribe(REQUEST_START, onStart);
      unsubscribe(REQUEST_ERROR, onError);
      unsubscribe(RESPONSE_FINISH, onResponse);
      waiting.clear();
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
 * The one stderr line after an exit or signal whose shutdown did not deliver: where to, why,
 * and that the process did not wait for the exporters' own timeouts.
 */
export function describeUndelivered(
  outcome: { readonly error: unknown } | { readonly waitedMs: number },
  seen: DeliveryFailure | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const where = seen?.where ?? configuredEndpoint(env);
  if ('waitedMs' in outcome) {
    const why = seen?.why ?? `no export finished within ${Math.round(outcome.waitedMs)} ms`;
    return `telemetry was not delivered to ${where}: ${why}; gave up after ${Math.round(outcome.waitedMs)} ms so the process could end.`;
  }
  const error = outcome.error as { message?: unknown } | undefined;
  const why = seen?.why ?? (typeof error?.message === 'string' ? error.message : String(outcome.error));
  return `telemetry was not delivered to ${where}: ${why}.`;
}
