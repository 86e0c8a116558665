// The call-site scenarios of issue #10, run the same way on every ORM. The application code
// lives in each ORM's test file (its frames are what the spans must name); this module only
// drives it and asserts by span name, function name and `// line:<name>` markers.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { expectCheckedIn } from '../../../support/spans';
import type { TestTracing } from '../../../support/tracing';
import { callSiteAssertions, onlyChildNamed, type ExpectedFrame } from './call-site';

/**
 * The application a test file defines. Each function carries a `// line:<its name>` marker on
 * the line of its call (the ORM call, or the call of the next application function), and must
 * `await` that call: V8 shows an async caller on the stack only while it awaits.
 */
export interface OrmApplication<Db> {
  /** `usersPage → findUsers → ORM find` on one table. */
  usersPage(db: Db): Promise<unknown>;
  /** `ordersPage → findOrders → the same kind of ORM find` on another table. */
  ordersPage(db: Db): Promise<unknown>;
  /** A transaction through the ORM's own API. */
  renameUser(db: Db): Promise<unknown>;
  /** Another transaction through the ORM's own API, from another function. */
  refundOrder(db: Db): Promise<unknown>;
  /** The request handler: runs one of the functions above. */
  handleRequest(db: Db, work: (db: Db) => Promise<unknown>): Promise<unknown>;
  /** Start-up work: runs `usersPage` before any request exists. */
  warmUp(db: Db): Promise<void>;
}

/**
 * Service-style application code (#20): plain (non-async) functions that return the ORM's
 * promise, and an async controller that awaits it. V8 never shows such a function on the async
 * stack: only a capture where it calls the ORM can name it. Markers as in {@link OrmApplication}.
 */
export interface OrmServices<Db> {
  /** `return <ORM find on the users table>`, not async: `// line:<its name>`, e.g. `getUsers`. */
  getUsers(db: Db): PromiseLike<unknown>;
  /** `return <transaction through the ORM's API>`, not async: `// line:<its name>`. */
  transferFunds(db: Db): PromiseLike<unknown>;
  /** More service functions of the same kind (other finders, writes), each `// line:<its name>`. */
  others?: readonly ((db: Db) => PromiseLike<unknown>)[];
  /** `return await service(db)`: `// line:controller`. */
  controller(db: Db, service: (db: Db) => PromiseLike<unknown>): Promise<unknown>;
  /**
   * Checks a connection out of the pool under the ORM directly and gives it back, from its own
   * function (`// line:directCheckout`): a checkout no ORM entry point causes.
   */
  directCheckout?(db: Db): Promise<void>;
}

export interface OrmSuiteOptions<Db> {
  readonly tracing: TestTracing;
  /** `import.meta.url` of the test file that defines the application. */
  readonly fileUrl: string;
  /** Name of the checkout spans of the pool under the ORM, e.g. `pg-pool checkout`. */
  readonly checkout: string;
  /** Connects, creates the tables `usersPage` and `ordersPage` read, and seeds a row in each. */
  open(): Promise<Db>;
  /** Drops the tables and closes the ORM and its pool, so the process can exit. */
  close(db: Db): Promise<void>;
  readonly app: OrmApplication<Db>;
  /**
   * Fewest library (and Node) frames expected between the pool's acquire and the first frame
   * of the test file in `code.stacktrace` for a find: proves the test takes the deep path.
   */
  readonly minLibraryFrames: number;
  /** Service-style scenarios (#20), where the ORM's entry points carry the call site. */
  readonly services?: OrmServices<Db>;
}

const frame = (functionName: string): ExpectedFrame => ({ functionName, marker: functionName });
const FIND_USERS = frame('findUsers');
const FIND_ORDERS = frame('findOrders');
const USERS_PAGE = frame('usersPage');
const ORDERS_PAGE = frame('ordersPage');
const RENAME_USER = frame('renameUser');
const REFUND_ORDER = frame('refundOrder');
const HANDLE_REQUEST = frame('handleRequest');
const WARM_UP = frame('warmUp');
const CONTROLLER = frame('controller');
const DIRECT_CHECKOUT = frame('directCheckout');

/** Registers the scenarios (hooks and tests) in the current `describe`. */
export function ormCallSiteSuite<Db>(options: OrmSuiteOptions<Db>): void {
  const { tracing, checkout, app } = options;
  // Called as plain functions, as an application calls them: through `app.` V8 would name the
  // frames `Object.handleRequest`.
  const { handleRequest, warmUp } = app;
  const { expectCallSite, expectCallPath, libraryFramesAbove } = callSiteAssertions(options.fileUrl);
  let db: Db | undefined;
  let startUpCheckouts: ReadableSpan[] = [];

  /** Runs `work` through the request handler inside a request span; its one checkout span. */
  async function checkoutOfRequest(name: string, work: (db: Db) => Promise<unknown>): Promise<ReadableSpan> {
    await tracing.inRequest(name, () => handleRequest(db!, work));
    const span = onlyChildNamed(tracing.exporter.getFinishedSpans(), checkout, name);
    expectCheckedIn(span);
    return span;
  }

  beforeAll(async () => {
    db = await options.open();
    tracing.exporter.reset();
    await warmUp(db);
    startUpCheckouts = tracing.spansNamed(checkout);
  });
  afterAll(async () => {
    if (db !== undefined) await options.close(db);
  });
  beforeEach(() => tracing.exporter.reset());

  it('two application functions running the same kind of query: each checkout names its own function and line', async () => {
    const users = await checkoutOfRequest('GET /users', app.usersPage);
    const orders = await checkoutOfRequest('GET /orders', app.ordersPage);
    expectCallSite(users, FIND_USERS);
    expectCallSite(orders, FIND_ORDERS);
    // Each stack is its own, not one borrowed from a checkout with the same library frames.
    expect(String(users.attributes['code.stacktrace'])).not.toContain('findOrders');
    expect(String(orders.attributes['code.stacktrace'])).not.toContain('findUsers');
    expect(libraryFramesAbove(users)).toBeGreaterThanOrEqual(options.minLibraryFrames);
    expect(libraryFramesAbove(orders)).toBeGreaterThanOrEqual(options.minLibraryFrames);
  });

  it('pool.call_path holds the application frames, innermost first', async () => {
    const users = await checkoutOfRequest('GET /users', app.usersPage);
    const orders = await checkoutOfRequest('GET /orders', app.ordersPage);
    expectCallPath(users, [FIND_USERS, USERS_PAGE, HANDLE_REQUEST]);
    expectCallPath(orders, [FIND_ORDERS, ORDERS_PAGE, HANDLE_REQUEST]);
  });

  it('the same function at start-up and in a request: the request checkout names the request frames', async () => {
    expect(startUpCheckouts.map((span) => span.name)).toEqual([checkout]);
    // Start-up runs outside any request: no parent span.
    expect(startUpCheckouts[0]!.parentSpanContext).toBeUndefined();
    const request = await checkoutOfRequest('GET /users', app.usersPage);
    expectCallSite(request, FIND_USERS);
    const stack = String(request.attributes['code.stacktrace']);
    expect(stack).toContain('handleRequest (');
    expect(stack).not.toContain('warmUp');
    expectCallPath(request, [FIND_USERS, USERS_PAGE, HANDLE_REQUEST]);
    expectCallPath(startUpCheckouts[0]!, [FIND_USERS, USERS_PAGE, WARM_UP]);
  });

  it("a transaction through the ORM's API from two functions: each checkout names the line of its transaction", async () => {
    const renamed = await checkoutOfRequest('POST /users/rename', app.renameUser);
    const refunded = await checkoutOfRequest('POST /orders/refund', app.refundOrder);
    expectCallSite(renamed, RENAME_USER);
    expectCallSite(refunded, REFUND_ORDER);
    expectCallPath(renamed, [RENAME_USER, HANDLE_REQUEST]);
    expectCallPath(refunded, [REFUND_ORDER, HANDLE_REQUEST]);
  });

  const services = options.services;
  if (services === undefined) return;
  const { getUsers, transferFunds, controller, directCheckout, others = [] } = services;
  // Named after the functions given, so a file can run the scenarios on other ORM calls too.
  const GET_USERS = frame(getUsers.name);
  const TRANSFER_FUNDS = frame(transferFunds.name);

  it('service style: a plain function returns the ORM find, an async controller awaits it: code.* names the service function and its line', async () => {
    const span = await checkoutOfRequest('GET /service/users', (db) => controller(db, getUsers));
    expectCallSite(span, GET_USERS);
    expectCallPath(span, [GET_USERS, CONTROLLER]);
  });

  it('service style: a plain function returns a transaction, an async controller awaits it: the service function and its line', async () => {
    const span = await checkoutOfRequest('POST /service/transfer', (db) => controller(db, transferFunds));
    expectCallSite(span, TRANSFER_FUNDS);
    expectCallPath(span, [TRANSFER_FUNDS, CONTROLLER]);
  });

  for (const service of others) {
    it(`service style: ${service.name} returns its ORM call to an awaiting controller: code.* names ${service.name} and its line`, async () => {
      const span = await checkoutOfRequest(`RUN /service/${service.name}`, (db) => controller(db, service));
      expectCallSite(span, frame(service.name));
      expectCallPath(span, [frame(service.name), CONTROLLER]);
    });
  }

  if (directCheckout !== undefined) {
    it('an entry-point capture stays with its call: a later checkout of another function names that function', async () => {
      await tracing.inRequest('GET /service/then-direct', async () => {
        await handleRequest(db!, (db) => controller(db, getUsers));
        await directCheckout(db!);
      });
      const checkouts = tracing.spansNamed(checkout);
      expect(checkouts.map((span) => span.attributes['code.function.name'])).toEqual([getUsers.name, 'directCheckout']);
      expectCallSite(checkouts[1]!, DIRECT_CHECKOUT);
      expect(String(checkouts[1]!.attributes['code.stacktrace'])).not.toContain(`${getUsers.name} (`);
    });
  }
}
