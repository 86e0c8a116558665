/** The server part of a database URL: what a pool description may show. */
export interface ServerOfUrl {
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
}

/**
 * Host, port and database of a `postgres://…` (or any `scheme://…`) connection string. User and
 * password are never read; a string that is not a URL yields nothing.
 */
export function serverOfConnectionString(connectionString: string | undefined): ServerOfUrl {
  if (connectionString === undefined || connectionString === '') return {};
  try {
    const url = new URL(connectionString);
    const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    const port = Number(url.port);
    return {
      ...(url.hostname !== '' && { host: decodeURIComponent(url.hostname) }),
      ...(url.port !== '' && Number.isInteger(port) && { port }),
      ...(database !== '' && { database }),
    };
  } catch {
    return {};
  }
}
