import type { Span } from '@opentelemetry/api';
import type { CapturedStack } from '../call-site/stack';
import type { CallerContext } from './caller-context';
import type { PoolMetrics } from '../signals/metrics';
import type { FailedCheckout } from './failure-queue';
import type { InvalidReleaseReason } from './invalid-release';
import type { SpanClock } from './span-clock';

/**
 * What a lease needs from the core that created it; `L` is the lease type (generic so that this
 * contract does not import the lease it serves).
 */
export interface LeaseHost<L> {
  readonly metrics: PoolMetrics;
  /** Every time put on a checkout span goes through it (see {@link SpanClock}). */
  readonly clock: SpanClock;
  /** The pool granted the lease a connection: it is now a holder, watched for leaks. */
  leaseGranted(lease: L): void;
  /** The lease is being checked in at `now`: reported first if it crossed the leak threshold unreported. */
  leaseReturning(lease: L, now: number): void;
  /** The lease was granted: its caller context is reduced to the span context once this job is over. */
  loosenLater(caller: CallerContext): void;
  /** Called exactly once, when the lease ends for any reason. */
  forget(lease: L): void;
  /** Remembers which lease holds `connection`, for adapters that release or query by it. */
  bindConnection(connection: unknown, lease: L): void;
  /** Records an invalid release whose lease span has already ended. */
  reportInvalidRelease(lease: L, reason: InvalidReleaseReason, stack: CapturedStack | undefined): void;
  /** The stack above `boundary`, capped like checkin stacks. */
  captureCheckinStack(boundary: Function): CapturedStack | undefined;
  reportError(where: string, error: unknown): void;
  /**
   * Starts the checkout span of a lease that queued, when it is granted or fails, at the time it
   * was requested (see `Lease.span`).
   */
  startQueuedSpan(lease: L): Span;
  /** Finishes a failed checkout's span, now or on a later turn of the loop (the core's failure queue). */
  finishFailure(failure: FailedCheckout): void;
  /** Whether the holders are appended to the message of the pool's own exhausted error. */
  readonly enrichErrors: boolean;
}
