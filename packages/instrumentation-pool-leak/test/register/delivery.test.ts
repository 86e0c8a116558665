// What the exit watch learns from real HTTP requests sent the way the OTLP exporters send them
// (their User-Agent), to a refused port, a server that never answers, and one that answers.
import { createServer as createHttpServer, request, type ClientRequest, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { describeUndelivered, releaseExportsAtExit, watchDelivery, type DeliveryWatch } from '../../src/register/delivery';

const EXPORTER_AGENT = 'OTel-OTLP-Exporter-JavaScript/0.301.0';
const servers: (Server | HttpServer)[] = [];
/** Sockets of the server that never answers, ended after each test. */
const acceptedSockets = new Set<Socket>();
let watch: DeliveryWatch | undefined;

afterEach(async () => {
  watch?.stop();
  watch = undefined;
  for (const socket of acceptedSockets) socket.destroy();
  acceptedSockets.clear();
  for (const server of servers.splice(0)) {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    (server as HttpServer).closeAllConnections?.();
    await closed;
  }
});

async function listen(server: Server | HttpServer): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** POSTs like an exporter; `ended` resolves when the request ended either way. */
function send(port: number, userAgent: string, path = '/v1/traces'): { req: ClientRequest; ended: Promise<void> } {
  let req: ClientRequest | undefined;
  const ended = new Promise<void>((resolve) => {
    req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'user-agent': userAgent } }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', () => resolve());
    req.end('payload');
  });
  return { req: req!, ended };
}

function post(port: number, userAgent: string, path?: string): Promise<void> {
  return send(port, userAgent, path).ended;
}

/** An HTTP collector answering every request with `status`. */
function answering(status: number): Promise<number> {
  return listen(createHttpServer((req, res) => req.resume().on('end', () => res.writeHead(status).end())));
}

describe('watchDelivery', () => {
  it('a refused connection: where and why', async () => {
    const port = await closedPort();
    watch = watchDelivery();
    await post(port, EXPORTER_AGENT);
    expect(watch.undelivered(false)).toEqual({ where: `http://127.0.0.1:${port}/v1/traces`, why: 'connection refused (ECONNREFUSED)' });
    const firstTry = watch.lastProgressAt();
    expect(firstTry, 'the first try was progress').toBeTypeOf('number');
    await post(port, EXPORTER_AGENT);
    expect(watch.lastProgressAt(), 'a retry after a failure is not').toBe(firstTry);
  });

  it('a server that accepts and never answers: no answer for as long as the request waited, once the wait is given up', async () => {
    const server = createServer((socket) => {
      socket.on('error', () => {});
      acceptedSockets.add(socket);
    });
    const port = await listen(server);
    watch = watchDelivery();
    const { req, ended } = send(port, EXPORTER_AGENT);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(watch.undelivered(false), 'a request still waiting is no failure while the shutdown goes on').toBeUndefined();
    const failure = watch.undelivered(true);
    expect(failure?.where).toBe(`http://127.0.0.1:${port}/v1/traces`);
    expect(failure?.why).toMatch(/^no answer within \d+ ms$/);
    expect(Number(/(\d+) ms/.exec(failure?.why ?? '')?.[1])).toBeGreaterThanOrEqual(90);

    // What the exporter does at its own timeout.
    req.destroy();
    await ended;
    expect(watch.undelivered(true)?.why).toBe('no answer before the exporter timed out');
  });

  it('an answer: the success is noted, and no failure', async () => {
    const port = await answering(200);
    watch = watchDelivery();
    const sent = performance.now();
    await post(port, EXPORTER_AGENT);
    expect(watch.lastProgressAt()).toBeGreaterThanOrEqual(sent);
    expect(watch.undelivered(true)).toBeUndefined();
  });

  it('an error status: named; retried requests are counted, and a later delivery clears them', async () => {
    const port = await answering(503);
    watch = watchDelivery();
    await post(port, EXPORTER_AGENT);
    expect(watch.undelivered(false)?.why).toBe('HTTP 503');
    await post(port, EXPORTER_AGENT);
    await post(port, EXPORTER_AGENT);
    expect(watch.undelivered(false)?.why).toBe('HTTP 503 (3 requests failed)');
    const retry = send(port, EXPORTER_AGENT);
    await new Promise((resolve) => setImmediate(resolve));
    expect(watch.undelivered(true)?.why, 'a retry still out does not change the story').toBe('HTTP 503 (3 requests failed)');
    await retry.ended;
    expect(watch.undelivered(true)?.why).toBe('HTTP 503 (4 requests failed)');

    const healthy = await answering(200);
    await post(healthy, EXPORTER_AGENT);
    expect(watch.undelivered(false), 'another URL was delivered; this one was not').toEqual({ where: `http://127.0.0.1:${port}/v1/traces`, why: 'HTTP 503 (4 requests failed)' });
  });

  it('several URLs failing: the traces one is named', async () => {
    const port = await answering(502);
    watch = watchDelivery();
    await post(port, EXPORTER_AGENT, '/v1/metrics');
    await post(port, EXPORTER_AGENT, '/v1/traces');
    await post(port, EXPORTER_AGENT, '/v1/logs');
    expect(watch.undelivered(false)).toEqual({ where: `http://127.0.0.1:${port}/v1/traces`, why: 'HTTP 502' });
  });

  it("the application's own requests are not the exporters'", async () => {
    const port = await closedPort();
    watch = watchDelivery();
    await post(port, 'my-app/1.0');
    expect(watch.undelivered(true)).toBeUndefined();
  });

  it('after stop(), nothing more is recorded', async () => {
    const port = await closedPort();
    watch = watchDelivery();
    watch.stop();
    await post(port, EXPORTER_AGENT);
    expect(watch.undelivered(true)).toBeUndefined();
  });
});

describe('describeUndelivered', () => {
  const refused = { where: 'http://127.0.0.1:4318/v1/traces', why: 'connection refused (ECONNREFUSED)' };

  it('given up: where, why and how long', () => {
    expect(describeUndelivered({ settled: false, waitedMs: 1_004.6 }, refused)).toBe(
      'telemetry was not delivered to http://127.0.0.1:4318/v1/traces: connection refused (ECONNREFUSED); gave up after 1005 ms so the process could end.',
    );
  });

  it('nothing seen (e.g. gRPC): the configured endpoint, and the wait', () => {
    expect(describeUndelivered({ settled: false, waitedMs: 1_000 }, undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317' })).toBe(
      'telemetry was not delivered to http://collector:4317: no export finished within 1000 ms; gave up after 1000 ms so the process could end.',
    );
  });

  it('a failed shutdown: what the requests saw wins over the error', () => {
    const answered = { where: 'http://127.0.0.1:4318/v1/traces', why: 'HTTP 400' };
    expect(describeUndelivered({ settled: true, error: new Error('Bad Request') }, answered)).toBe(
      'telemetry was not delivered to http://127.0.0.1:4318/v1/traces: HTTP 400.',
    );
  });

  it('a failed shutdown: its error when no request told more', () => {
    expect(describeUndelivered({ settled: true, error: new Error('Not Found') }, undefined, {})).toBe(
      'telemetry was not delivered to http://localhost:4318 (the default endpoint): Not Found.',
    );
  });

  it('a shutdown that succeeded although the last requests failed (an SDK that swallows the failure): still said', () => {
    expect(describeUndelivered({ settled: true }, refused)).toBe(
      'telemetry was not delivered to http://127.0.0.1:4318/v1/traces: connection refused (ECONNREFUSED).',
    );
  });

  it('a shutdown that succeeded with nothing failed: no line', () => {
    expect(describeUndelivered({ settled: true }, undefined)).toBeUndefined();
  });
});

// Last in this file: the subscription stays for the rest of the process.
describe('releaseExportsAtExit', () => {
  it("timers set in reaction to a failed export are unref'd; the next callback's are not, and setTimeout is restored", async () => {
    releaseExportsAtExit();
    const original = globalThis.setTimeout;
    const port = await closedPort();

    const timers = await new Promise<{ reaction: NodeJS.Timeout; later: NodeJS.Timeout }>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/traces', method: 'POST', headers: { 'user-agent': EXPORTER_AGENT } });
      req.on('error', () => {
        // As the exporter's retry does: a timer a few promise jobs after the failure.
        void Promise.resolve()
          .then(() => Promise.resolve())
          .then(() => {
            const reaction = setTimeout(() => {}, 10_000);
            // Another callback (here the next timer) is no longer part of the reaction.
            setImmediate(() => {
              const later = setTimeout(() => {}, 10_000);
              resolve({ reaction, later });
            });
          });
      });
      req.end('payload');
    });

    expect(timers.reaction.hasRef()).toBe(false);
    expect(timers.later.hasRef()).toBe(true);
    expect(globalThis.setTimeout).toBe(original);
    clearTimeout(timers.reaction);
    clearTimeout(timers.later);
  });

  it("timers set in reaction to an error answer (the exporter's retry back-off on a 503) are unref'd", async () => {
    const port = await answering(503);
    const timer = await new Promise<NodeJS.Timeout>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/traces', method: 'POST', headers: { 'user-agent': EXPORTER_AGENT } }, (res) => {
        // As the exporter does: read the body, judge the answer at its end, retry after a back-off.
        res.resume();
        res.on('end', () => void Promise.resolve().then(() => resolve(setTimeout(() => {}, 10_000))));
      });
      req.end('payload');
    });
    expect(timer.hasRef()).toBe(false);
    clearTimeout(timer);
  });

  it("an application request's failure changes nothing", async () => {
    const port = await closedPort();
    const timer = await new Promise<NodeJS.Timeout>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', headers: { 'user-agent': 'my-app/1.0' } });
      req.on('error', () => void Promise.resolve().then(() => resolve(setTimeout(() => {}, 10_000))));
      req.end();
    });
    expect(timer.hasRef()).toBe(true);
    clearTimeout(timer);
  });
});
