import type { TracerProvider } from '@opentelemetry/api';

/** The provider methods hooked: work of ours must be done before each of them runs. */
type HookedMethod = 'shutdown' | 'forceFlush';

type ProviderMethod = (...args: unknown[]) => unknown;

type HookTarget = Partial<Record<HookedMethod, ProviderMethod>>;

interface HookRecord {
  readonly target: HookTarget;
  readonly method: HookedMethod;
  readonly original: ProviderMethod;
  readonly wrapper: ProviderMethod;
  /** Whether the method was the instance's own property before we shadowed it. */
  readonly hadOwn: boolean;
  active: boolean;
}

/** What runs before the provider's own method. */
export interface ProviderHookCallbacks {
  /** Before `shutdown`: end what is still open while the span processor still exports. */
  readonly beforeShutdown: () => void;
  /** Before `forceFlush`: finish spans whose end was deferred, so the flush exports them. */
  readonly beforeForceFlush?: () => void;
}

/** The global provider is a proxy; its SDK delegate is what gets shut down. */
function hookTargetOf(provider: TracerProvider): HookTarget | undefined {
  const delegating = provider as TracerProvider & { getDelegate?: () => TracerProvider };
  const target = (typeof delegating.getDelegate === 'function' ? delegating.getDelegate() : provider) as HookTarget;
  return typeof target.shutdown === 'function' ? target : undefined;
}

/**
 * Runs callbacks just before a tracer provider shuts down or force-flushes, so leases that are
 * still open can be ended (with ERROR status) and deferred failure spans finished while the span
 * processor still exports. The provider's own methods are shadowed on the instance and
 * restored by {@link ProviderShutdownHook.detachAll}.
 */
export class ProviderShutdownHook {
  private readonly records: HookRecord[] = [];
  private settledProvider: TracerProvider | undefined;

  constructor(private readonly callbacks: ProviderHookCallbacks) {}

  /** Hooks the provider (or its delegate) if not done yet; cheap when already hooked. */
  attach(provider: TracerProvider): void {
    if (provider === this.settledProvider) return;
    const target = hookTargetOf(provider);
    // A proxy whose delegate is still the no-op provider: look again at the next checkout.
    if (target === undefined) return;
    this.settledProvider = provider;
    if (this.records.some((record) => record.target === target && record.active)) return;
    this.hook(target, 'shutdown', this.callbacks.beforeShutdown);
    if (this.callbacks.beforeForceFlush !== undefined) this.hook(target, 'forceFlush', this.callbacks.beforeForceFlush);
  }

  /** Restores every hooked provider; a wrapper someone else wrapped again is made inert. */
  detachAll(): void {
    for (const record of this.records.splice(0)) {
      record.active = false;
      if (record.target[record.method] !== record.wrapper) continue;
      if (record.hadOwn) record.target[record.method] = record.original;
      else delete record.target[record.method];
    }
    this.settledProvider = undefined;
  }

  private hook(target: HookTarget, method: HookedMethod, before: () => void): void {
    const original = target[method];
    if (typeof original !== 'function') return;
    const record: HookRecord = {
      target,
      method,
      original,
      hadOwn: Object.prototype.hasOwnProperty.call(target, method),
      active: true,
      wrapper: function runOursFirst(this: unknown, ...args: unknown[]) {
        if (record.active) {
          try {
            before();
          } catch {
            // Our work must never stop the provider's own shutdown or flush.
          }
        }
        return original.apply(this, args);
      },
    };
    target[method] = record.wrapper;
    this.records.push(record);
  }
}
