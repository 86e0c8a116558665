// Loopback stand-ins for an OTLP collector that does not deliver: nothing listening (refused), a
// server that accepts and never answers, and one that answers every request with one status.
// Each counts the requests it got per path, so a test can tell retries happened.
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';

export type CollectorAnswer = 'refused' | 'hang' | number;

export interface LoopbackCollector {
  /** `http://127.0.0.1:<port>`, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  /** Requests received (answered or not) per path, e.g. `/v1/traces`. */
  requests(path: string): number;
  close(): Promise<void>;
}

export async function startCollector(answer: CollectorAnswer): Promise<LoopbackCollector> {
  const counts = new Map<string, number>();
  const count = (path: string) => counts.set(path, (counts.get(path) ?? 0) + 1);
  if (answer === 'refused') {
    const server = createServer();
    const port = await listen(server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return { endpoint: `http://127.0.0.1:${port}`, requests: () => 0, close: () => Promise.resolve() };
  }
  const sockets = new Set<Socket>();
  const server: Server =
    answer === 'hang'
      ? createServer((socket) => {
          sockets.add(socket);
          socket.on('error', () => {});
          // The request line names the path; count it, and never answer.
          socket.once('data', (chunk: Buffer) => count(/^POST (\S+)/.exec(chunk.toString('latin1'))?.[1] ?? '?'));
        })
      : createHttpServer((req, res) => {
          count(req.url ?? '?');
          req.resume();
          req.on('end', () => res.writeHead(answer, { 'content-type': 'text/plain' }).end(`answered ${answer}`));
        });
  server.on('connection', (socket: Socket) => sockets.add(socket));
  const port = await listen(server);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests: (path) => counts.get(path) ?? 0,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}
