import { context, trace, type Attributes } from '@opentelemetry/api';
import { executionAsyncResource } from 'node:async_hooks';
import {
  ATTR_POOL_CHECKIN_ASYNC_RESOURCE_TYPE,
  ATTR_POOL_CHECKIN_STACKTRACE,
  EVENT_POOL_CHECKIN_FINALIZER,
  EVENT_POOL_CHECKIN_LOOP_TICK,
} from '../signals/semconv';

/** Where a checkin ran, when that is a place a checkin should not be. */
export type MisplacedCheckin = 'finalizer' | 'loop_tick';

/** Cleanup callbacks currently running (of registries created while the marker is installed). */
let finalizerDepth = 0;
let installs = 0;
let NativeFinalizationRegistry: FinalizationRegistryConstructor | undefined;

/**
 * Replaces the global `FinalizationRegistry` with a subclass whose cleanup callbacks run under a
 * marker, so a checkin made from one is recognised with a single integer test. The marker is the
 * primary signal because Node 24 no longer shows a `cleanupSome` frame in a cleanup callback's
 * stack (measured on 24.21 and 26.10: the callback's own frame and nothing beneath it).
 * Reference-counted: several instrumentations may install it.
 */
export function installFinalizerMarker(): void {
  installs++;
  if (installs > 1) return;
  const Native = globalThis.FinalizationRegistry;
  NativeFinalizationRegistry = Native;
  const Marked = class FinalizationRegistry<T> extends Native<T> {
    constructor(cleanup: (heldValue: T) => void) {
      // A non-function is the native constructor's TypeError to throw, unchanged.
      if (typeof cleanup !== 'function') super(cleanup);
      else {
        super(function cleanupUnderMarker(this: unknown, heldValue: T) {
          finalizerDepth++;
          try {
            return cleanup.call(this, heldValue);
          } finally {
            finalizerDepth--;
          }
        });
      }
    }
  };
  globalThis.FinalizationRegistry = Marked as FinalizationRegistryConstructor;
}

/** Undoes {@link installFinalizerMarker} when the last installer leaves. */
export function uninstallFinalizerMarker(): void {
  if (installs === 0) return;
  installs--;
  if (installs > 0 || NativeFinalizationRegistry === undefined) return;
  globalThis.FinalizationRegistry = NativeFinalizationRegistry;
  NativeFinalizationRegistry = undefined;
}

/**
 * Classifies a checkin. Finalizer wins over loop tick. A loop-tick checkin is one whose lease
 * was taken inside a trace (`ownerTraceId`) and which runs where that trace is not active: no
 * context at all, or another trace. `executionAsyncId() === 0` is not used: on Node 24 every
 * promise continuation reports 0 under AsyncContextFrame.
 */
export function classifyCheckin(ownerTraceId: string | undefined): MisplacedCheckin | undefined {
  if (finalizerDepth > 0) return 'finalizer';
  if (ownerTraceId === undefined) return undefined;
  const active = trace.getSpanContext(context.active());
  return active !== undefined && active.traceId === ownerTraceId ? undefined : 'loop_tick';
}

/**
 * Registries created before the marker was installed: on Node 22 and older their callbacks run
 * beneath a `FinalizationRegistry.cleanupSome` frame, which a checkin stack shows.
 */
export function stackShowsFinalizer(stackText: string): boolean {
  return stackText.includes('FinalizationRegistry.cleanupSome');
}

/** The async resource the loop is running (`Timeout`, `Immediate`, ...), when it says anything. */
export function currentAsyncResourceType(): string | undefined {
  const resource = executionAsyncResource() as object | undefined;
  const name = resource?.constructor?.name;
  return name === undefined || name === 'Object' || name === '' ? undefined : name;
}

/** The span event that records a misplaced checkin. */
export interface MisplacedCheckinEvent {
  readonly name: typeof EVENT_POOL_CHECKIN_FINALIZER | typeof EVENT_POOL_CHECKIN_LOOP_TICK;
  readonly attributes: Attributes;
}

/**
 * The event for a checkin classified as `kind`, with its stack (`stackText`, when captured).
 * A registry older than the marker still shows its finalizer in the stack, so the stack can
 * turn a loop tick into a finalizer; a loop tick names the async resource the loop ran.
 */
export function misplacedCheckinEvent(kind: MisplacedCheckin, stackText: string | undefined): MisplacedCheckinEvent {
  const finalizer = kind === 'finalizer' || (stackText !== undefined && stackShowsFinalizer(stackText));
  const attributes: Record<string, string> = {};
  if (stackText !== undefined) attributes[ATTR_POOL_CHECKIN_STACKTRACE] = stackText;
  if (!finalizer) {
    const resourceType = currentAsyncResourceType();
    if (resourceType !== undefined) attributes[ATTR_POOL_CHECKIN_ASYNC_RESOURCE_TYPE] = resourceType;
  }
  return { name: finalizer ? EVENT_POOL_CHECKIN_FINALIZER : EVENT_POOL_CHECKIN_LOOP_TICK, attributes };
}
