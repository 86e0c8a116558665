// The services' HTTP front: node:http, a route table, and one SERVER span per request, made by
// hand the way @opentelemetry/instrumentation-http would, so checkout spans have a parent and
// every request is its own trace in Jaeger.
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CartService } from './carts';
import type { CatalogService } from './catalog';
import { InvoiceNotReadyError, type BillingService } from './service';

/** The services behind the routes, each with a pool of its own. */
export interface Services {
  readonly billing: BillingService;
  readonly catalog: CatalogService;
  readonly carts: CartService;
}

/** One route: its low-cardinality template (the span name) and the service call it makes. */
export interface Route {
  readonly template: string;
  readonly pattern: RegExp;
  readonly handle: (services: Services, id: number) => Promise<unknown>;
}

export const ROUTES: readonly Route[] = [
  { template: '/orders/:id', pattern: /^\/orders\/(\d+)$/, handle: ({ billing }, id) => billing.getOrder(id) },
  { template: '/invoices/:id/export', pattern: /^\/invoices\/(\d+)\/export$/, handle: ({ billing }, id) => billing.exportInvoice(id) },
  { template: '/reports/:id', pattern: /^\/reports\/(\d+)$/, handle: ({ billing }, id) => billing.renderReport(id) },
  { template: '/audit/:id', pattern: /^\/audit\/(\d+)$/, handle: ({ billing }, id) => billing.recordAudit(id) },
  { template: '/statements/:id', pattern: /^\/statements\/(\d+)$/, handle: ({ billing }, id) => billing.buildStatement(id) },
  { template: '/catalog/:id', pattern: /^\/catalog\/(\d+)$/, handle: ({ catalog }, id) => catalog.search(id) },
  { template: '/carts/:id/totals', pattern: /^\/carts\/(\d+)\/totals$/, handle: ({ carts }, id) => carts.cartTotals(id) },
  { template: '/carts/:id/checkout', pattern: /^\/carts\/(\d+)\/checkout$/, handle: ({ carts }, id) => carts.beginCheckout(id) },
  { template: '/carts/:id', pattern: /^\/carts\/(\d+)$/, handle: ({ carts }, id) => carts.viewCart(id) },
];

/** pg-pool's message when no connection became free within connectionTimeoutMillis. */
const POOL_TIMEOUT = 'timeout exceeded when trying to connect';

export interface HttpServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  close(): Promise<void>;
}

export async function startHttpServer(services: Services): Promise<HttpServer> {
  const tracer = trace.getTracer('pool-leak-demo');
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    const match = ROUTES.map((route) => ({ route, found: route.pattern.exec(path) })).find(({ found }) => found !== null);
    if (match === undefined || request.method !== 'GET') {
      send(response, 404, { error: `no route for ${request.method} ${path}` });
      return;
    }
    const { route, found } = match;
    void tracer.startActiveSpan(
      `GET ${route.template}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': 'GET', 'http.route': route.template, 'url.path': path, 'url.scheme': 'http' },
      },
      (span) => respond(span, response, () => route.handle(services, Number(found?.[1]))),
    );
  });
  // Loopback load only: keep sockets open between requests like a real client would.
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Runs the handler, maps its outcome to a status code, and ends the span like instrumentation-http. */
async function respond(span: Span, response: ServerResponse, work: () => Promise<unknown>): Promise<void> {
  try {
    const body = await work();
    finish(span, response, 200, body);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const status = error instanceof InvoiceNotReadyError ? 409 : message === POOL_TIMEOUT ? 503 : 500;
    // HTTP semconv: a 4xx is the client's problem, not a failed server span.
    if (status >= 500 && error instanceof Error) span.recordException(error);
    if (status >= 500) span.setAttribute('error.type', error instanceof Error ? error.name : '_OTHER');
    finish(span, response, status, { error: message });
  }
}

function finish(span: Span, response: ServerResponse, status: number, body: unknown): void {
  span.setAttribute('http.response.status_code', status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: String((body as { error?: unknown }).error ?? status) });
  send(response, status, body);
  span.end();
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
