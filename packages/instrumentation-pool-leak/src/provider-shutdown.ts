import type { TracerProvider } from '@opentelemetry/api';

interface ShutdownTarget {
  shutdown: (...args: unknown[]) => unknown;
}

interface HookRecord {
  readonly target: ShutdownTarget;
  readonly original: ShutdownTarget['shutdown'];
  readonly wrapper: ShutdownTarget['shutdown'];
  /** Whether `shutdown` was the instance's own property before we shadowed it. */
  readonly hadOwn: boolean;
  active: boolean;
}

/** The global provider is a proxy; its SDK delegate is what gets shut down. */
function shutdownTargetOf(provider: TracerProvider): ShutdownTarget | undefined {
  const delegating = provider as TracerProvider & { getDelegate?: () => TracerProvider };
  const target = (typeof delegating.getDelegate === 'function' ? delegating.getDelegate() : provider) as Partial<ShutdownTarget>;
  return typeof target.shutdown === 'function' ? (target as ShutdownTarget) : undefined;
}

/**
 * Runs a callback just before a tracer provider shuts down, so leases that are still open can
 * be ended (with ERROR status) while their span processor still exports. The provider's own
 * `shutdown` is shadowed on the instance and restored by {@link ProviderShutdownHook.detachAll}.
 */
export class ProviderShutdownHook {
  private readonly records: HookRecord[] = [];
  private settledProvider: TracerProvider | undefined;

  constructor(private readonly beforeShutdown: () => void) {}

  /** Hooks the provider (or its delegate) if not done yet; cheap when already hooked. */
  attach(provider: TracerProvider): void {
    if (provider === this.settledProvider) return;
    const target = shutdownTargetOf(provider);
    // A proxy whose delegate is still the no-op provider: look again at the next checkout.
    if (target === undefined) return;
    this.settledProvider = provider;
    if (this.records.some((record) => record.target === target && record.active)) return;
    const original = target.shutdown;
    const beforeShutdown = this.beforeShutdown;
    const record: HookRecord = {
      target,
      original,
      hadOwn: Object.prototype.hasOwnProperty.call(target, 'shutdown'),
      active: true,
      wrapper: function shutdownAfterEndingLeases(this: unknown, ...args: unknown[]) {
        if (record.active) {
          try {
            beforeShutdown();
          } catch {
            // Ending leases must never stop the provider from shutting down.
          }
        }
        return original.apply(this, args);
      },
    };
    target.shutdown = record.wrapper;
    this.records.push(record);
  }

  /** Restores every hooked provider; a wrapper someone else wrapped again is made inert. */
  detachAll(): void {
    for (const record of this.records.splice(0)) {
      record.active = false;
      if (record.target.shutdown !== record.wrapper) continue;
      if (record.hadOwn) record.target.shutdown = record.original;
      else delete (record.target as Partial<ShutdownTarget>).shutdown;
    }
    this.settledProvider = undefined;
  }
}
