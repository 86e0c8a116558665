import { InstrumentationNodeModuleDefinition, InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import { types } from 'node:util';
import type { AdapterContext } from '../kit/adapter';
import { carryingCaller, runningWithCallSite, type CallSiteHook } from '../kit/call-site-hooks';
import type { PrismaClientClass, PrismaPromiseLike, PrismaRuntime } from './prisma-types';
import type { LeaseCore } from '../../core';

/** Prisma 7: the client runtime that generated clients import, with driver adapters. */
const SUPPORTED_VERSIONS = ['>=7.0.0 <8'];
/** Node resolves `@prisma/client/runtime/client` to this file for `require` and `import` alike. */
const RUNTIME_FILES = ['@prisma/client/runtime/client.js'];
/** The methods of a Prisma promise that start its request (lazily, on first call). */
const RUNNING_METHODS = ['then', 'catch', 'finally'] as const;

/**
 * Prisma 7 with a driver adapter (`@prisma/adapter-pg` on a pg Pool): `prisma.user.findMany()`
 * returns a lazy Prisma promise, and the query runs from its `then()` after several awaits
 * inside Prisma's query interpreter; at the pg checkout every frame is Prisma's. Prisma makes
 * its promises as plain objects from a factory that each client instance holds
 * (`_createPrismaPromise`), inside a bundled runtime whose exports cannot be wrapped in place.
 * So the hook hands the generated client a stand-in for the runtime's `getPrismaClient`, whose
 * class patches each new client's promise factory: a promise remembers where the application
 * created it (`prisma.user.findMany()` runs in the application's frame), and its
 * `then`/`catch`/`finally` run with that call site. `$transaction` runs with its caller's.
 *
 * After `disable()` the stand-ins stay where the generated client holds them and call straight
 * through; clients created while enabled keep their patched factory, which then also calls
 * straight through.
 */
export const prismaHook: CallSiteHook = {
  name: '@prisma/client',
  serves: ['pg-pool', 'mysql2', 'mariadb'],
  moduleDefinitions({ core }: AdapterContext) {
    const state = new PrismaHookState(core);
    const files = RUNTIME_FILES.map(
      (name) =>
        new InstrumentationNodeModuleFile(
          name,
          SUPPORTED_VERSIONS,
          (runtime: PrismaRuntime) => state.patch(runtime),
          () => state.unpatch(),
        ),
    );
    return [new InstrumentationNodeModuleDefinition('@prisma/client', SUPPORTED_VERSIONS, undefined, undefined, files)];
  },
};

/** What one instrumentation instance did to Prisma, to undo it. */
class PrismaHookState {
  private enabled = false;
  /** Stand-in runtimes handed out, by runtime. */
  private readonly standIns = new WeakMap<PrismaRuntime, PrismaRuntime>();
  /** IITM namespaces whose `getPrismaClient` was replaced, with the original. */
  private readonly namespaces = new Map<PrismaRuntime, PrismaRuntime['getPrismaClient']>();
  /** Client class prototypes whose `$transaction` is wrapped (one per generated client). */
  private readonly prototypes = new Set<PrismaClientClass['prototype']>();
  private readonly originalTransactions = new WeakMap<object, PrismaClientClass['prototype']['$transaction']>();

  constructor(private readonly core: () => LeaseCore) {}

  /** Never throws: a runtime it cannot patch is handed on as it is. */
  patch(runtime: PrismaRuntime): PrismaRuntime {
    this.enabled = true;
    try {
      for (const prototype of this.prototypes) this.wrapTransaction(prototype);
      return this.runtimeFor(runtime);
    } catch (error) {
      this.core().reportError('prisma runtime', error);
      return runtime;
    }
  }

  private runtimeFor(runtime: PrismaRuntime): PrismaRuntime {
    if (typeof runtime?.getPrismaClient !== 'function') return runtime;
    // Imported by an ES module, the runtime reaches us as import-in-the-middle's namespace,
    // which takes the replacement in place; required, its exports are getters that cannot be
    // redefined: a stand-in object.
    if (types.isProxy(runtime)) {
      if (!this.namespaces.has(runtime)) {
        const original = runtime.getPrismaClient;
        this.namespaces.set(runtime, original);
        runtime.getPrismaClient = this.getPrismaClient(original);
      }
      return runtime;
    }
    let standIn = this.standIns.get(runtime);
    if (standIn === undefined) {
      const descriptors = Object.getOwnPropertyDescriptors(runtime);
      descriptors.getPrismaClient = { value: this.getPrismaClient(runtime.getPrismaClient), enumerable: true };
      standIn = Object.defineProperties({}, descriptors) as PrismaRuntime;
      this.standIns.set(runtime, standIn);
    }
    return standIn;
  }

  unpatch(): void {
    this.enabled = false;
    for (const [namespace, original] of this.namespaces) namespace.getPrismaClient = original;
    this.namespaces.clear();
    for (const prototype of this.prototypes) {
      const original = this.originalTransactions.get(prototype);
      if (original !== undefined && prototype.$transaction !== original) prototype.$transaction = original;
    }
  }

  /** `getPrismaClient` whose class patches each client it constructs while enabled. */
  private getPrismaClient(original: PrismaRuntime['getPrismaClient']): PrismaRuntime['getPrismaClient'] {
    const state = this;
    return function getPrismaClient(this: unknown, ...args: unknown[]): PrismaClientClass {
      const Client = original.apply(this, args);
      if (!state.enabled || typeof Client !== 'function') return Client;
      try {
        state.prototypes.add(Client.prototype);
        state.wrapTransaction(Client.prototype);
        // A Proxy, not a subclass: `new`, subclasses, statics and `instanceof` behave as before.
        return new Proxy(Client, {
          construct(target, constructArgs, newTarget) {
            const client = Reflect.construct(target, constructArgs, newTarget) as object;
            if (state.enabled) state.patchClient(client);
            return client;
          },
        });
      } catch (error) {
        state.core().reportError('prisma getPrismaClient', error);
        return Client;
      }
    };
  }

  /** `$transaction` runs with its caller's call site: Prisma opens the transaction after awaits. */
  private wrapTransaction(prototype: PrismaClientClass['prototype']): void {
    const original = this.originalTransactions.get(prototype);
    if (original !== undefined && prototype.$transaction !== original) return;
    const current = prototype.$transaction;
    if (typeof current !== 'function') return;
    this.originalTransactions.set(prototype, current);
    prototype.$transaction = carryingCaller(current, this.core);
  }

  /** Each Prisma promise the client makes remembers its creator and runs with its call site. */
  private patchClient(client: object): void {
    try {
      const holder = client as { _createPrismaPromise?: (...args: unknown[]) => unknown };
      const factory = holder._createPrismaPromise;
      if (typeof factory !== 'function') return;
      const state = this;
      holder._createPrismaPromise = function createPrismaPromise(this: unknown, ...args: unknown[]): unknown {
        const promise = factory.apply(this, args);
        if (state.enabled) state.carry(promise, createPrismaPromise);
        return promise;
      };
    } catch (error) {
      this.core().reportError('prisma client', error);
    }
  }

  private carry(promise: unknown, boundary: Function): void {
    try {
      if (typeof promise !== 'object' || promise === null) return;
      this.core().callSites.remember(promise, boundary);
      const methods = promise as PrismaPromiseLike;
      for (const name of RUNNING_METHODS) {
        const method = methods[name];
        if (typeof method === 'function') methods[name] = runningWithCallSite(method, this.core);
      }
    } catch (error) {
      this.core().reportError('prisma promise', error);
    }
  }
}
