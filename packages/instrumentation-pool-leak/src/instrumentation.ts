import { trace, type TracerProvider } from '@opentelemetry/api';
import { basename, dirname, join } from 'node:path';
import { InstrumentationBase, type InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import type { AdapterContext } from './adapters/kit/adapter';
import { ApiMismatchCheck } from './register/api-compat';
import { ADAPTERS, CALL_SITE_HOOKS } from './adapters';
import { installFinalizerMarker, uninstallFinalizerMarker } from './core/checkin-context';
import { plainOptions, resolveConfig, type ResolvedConfig } from './config';
import { LeaseCore, type LeaseCoreSettings } from './core/lease-core';
import { hookImportedFiles } from './adapters/kit/imported-files';
import { createPatcher } from './adapters/kit/patcher';
import { createStackCapture, NO_STACK_CAPTURE, type StackCapture } from './call-site/stack';
import { POOL_LIBRARIES, type PoolLeakInstrumentationConfig } from './types';
import { PACKAGE_NAME, PACKAGE_VERSION } from './version';

/**
 * OpenTelemetry instrumentation for Node.js connection pools. Every checkout becomes a
 * `<library> checkout` span that lasts until the connection is checked in, carrying the stack
 * and call site of the code that took the connection.
 *
 * @example
 * ```ts
 * import { registerInstrumentations } from '@opentelemetry/instrumentation';
 * import { PoolLeakInstrumentation } from 'opentelemetry-instrumentation-pool-leak';
 *
 * registerInstrumentations({ instrumentations: [new PoolLeakInstrumentation()] });
 * ```
 */
export class PoolLeakInstrumentation extends InstrumentationBase<PoolLeakInstrumentationConfig> {
  // `declare` keeps these out of the emitted class fields: the base constructor already calls
  // setConfig(), init() and enable(), and field initialisers would run after it and wipe them.
  private declare settings: ResolvedConfig;
  private declare core: LeaseCore | undefined;
  private declare explicitProvider: TracerProvider | undefined;
  private declare apiMismatchCheck: ApiMismatchCheck | undefined;
  private declare importedFilesHooked: boolean | undefined;

  /** `null` is taken as `{}`, like the contrib instrumentations do. */
  constructor(config: PoolLeakInstrumentationConfig | null = {}) {
    super(PACKAGE_NAME, PACKAGE_VERSION, plainOptions(config));
  }

  /**
   * Applies options; `OTEL_POOL_LEAK_ENABLED=false` forces `enabled: false`. Never throws:
   * `null`, a Proxy or throwing getters are read as far as they can be, with warnings.
   */
  override setConfig(options: PoolLeakInstrumentationConfig | null = {}): void {
    const config = plainOptions(options);
    this.settings = resolveConfig(config);
    super.setConfig(this.settings.killSwitch ? { ...config, enabled: false } : config);
    this.core?.configure(coreSettingsFor(this.settings));
  }

  /** Called by the base class whenever the meter provider changes. */
  protected override _updateMetricInstruments(): void {
    this.core?.setMeter(this.meter);
  }

  override setTracerProvider(tracerProvider: TracerProvider): void {
    super.setTracerProvider(tracerProvider);
    this.explicitProvider = tracerProvider;
  }

  /** Patches the enabled libraries; does nothing while `OTEL_POOL_LEAK_ENABLED=false`. */
  override enable(): void {
    if (this.settings.killSwitch) {
      this._diag.debug('OTEL_POOL_LEAK_ENABLED=false: nothing is patched');
      return;
    }
    if (this._enabled) return;
    installFinalizerMarker();
    this.core?.start();
    super.enable();
    this.hookImportedFilesOnce();
    this.checkApiCopy();
  }

  /**
   * Files inside ES-module packages (postgres.js) on `@opentelemetry/instrumentation` releases
   * whose own hook misses them (imported-files.ts). Once, as the base adds its hooks once.
   */
  private hookImportedFilesOnce(): void {
    if (this.importedFilesHooked === true) return;
    this.importedFilesHooked = true;
    try {
      this._diag.debug(`pool-leak: ${hookImportedFiles(this)}`);
    } catch (error) {
      this._diag.error('pool-leak: could not hook files inside ES-module packages; those imported with `import` (postgres.js, drizzle-orm) stay unpatched', error);
    }
  }

  /**
   * Warns once when this package's `@opentelemetry/api` cannot see the context manager or tracer
   * provider another copy registered (see api-compat.ts). Runs at enable() and once more at the
   * first checkout, for an SDK started after the instrumentation was created.
   */
  private checkApiCopy(): void {
    this.apiMismatchCheck ??= new ApiMismatchCheck(this._diag);
    this.apiMismatchCheck.check();
  }

  /**
   * Restores every patched function, the global `FinalizationRegistry` and the tracer
   * provider's own shutdown, and stops the leak timer.
   */
  override disable(): void {
    if (this._enabled) uninstallFinalizerMarker();
    super.disable();
    this.core?.stop();
  }

  protected override init(): InstrumentationNodeModuleDefinition[] {
    const patcher = createPatcher((where, error) => this._diag.error(`pool-leak: could not ${where}; left as it was`, error));
    const adapterContext: AdapterContext = { core: () => this.leaseCore(), patcher };
    const libraries = this.settings.libraries;
    return [
      ...POOL_LIBRARIES.filter((library) => libraries.has(library)).map((library) => ADAPTERS[library]),
      ...CALL_SITE_HOOKS.filter((hook) => hook.serves.some((library) => libraries.has(library))),
    ].flatMap((adapter) => adapter.moduleDefinitions(adapterContext));
  }

  /** Created on first use: patches can run inside the base constructor, before ours. */
  private leaseCore(): LeaseCore {
    if (this.core === undefined) this.checkApiCopy();
    this.core ??= new LeaseCore({
      tracer: () => this.tracer,
      tracerProvider: () => this.explicitProvider ?? trace.getTracerProvider(),
      meter: this.meter,
      settings: coreSettingsFor(this.settings),
      diag: this._diag,
    });
    return this.core;
  }
}

function coreSettingsFor(settings: ResolvedConfig): LeaseCoreSettings {
  return {
    stackCapture: stackCaptureOf(settings.stackFrames, settings.fullStacks),
    // Checkin stacks are captured only when a checkin event fires: always the whole capped stack.
    checkinStackCapture: stackCaptureOf(settings.checkinStackFrames, true),
    leakThresholdMs: settings.leakThresholdMs,
    waitThresholdMs: settings.waitThresholdMs,
    maxMetricCallSites: settings.maxMetricCallSites,
    enrichErrors: settings.enrichErrors,
    poolMetrics: settings.poolMetrics,
  };
}

/**
 * This package's code: the directory of this file (build/src when installed, src in the tests)
 * and the sources, which frames name instead under `--enable-source-maps`.
 */
const OWN_DIRS = [...new Set([__dirname, join(packageRoot(__dirname), 'src')])];

function packageRoot(dir: string): string {
  const parent = dirname(dir);
  return basename(dir) === 'src' && basename(parent) === 'build' ? dirname(parent) : parent;
}

/** Frames of this package are never shown as the call site. */
function stackCaptureOf(frames: number, fullStacks: boolean): StackCapture {
  return frames === 0 ? NO_STACK_CAPTURE : createStackCapture({ maxFrames: frames, ownDirs: OWN_DIRS, fullStacks });
}
