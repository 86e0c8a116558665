// flushOnExit against a stand-in process: which of flush / shutdown runs, and when the signal is
// raised again. The real process (exit by signal, exit code) is covered by test/register.test.ts.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { flushOnExit, type ExitingProcess, type FlushedSignal, type ShutdownOutcome } from '../../src/register/shutdown';

class FakeProcess extends EventEmitter implements ExitingProcess {
  readonly pid = 4242;
  readonly kills: { pid: number; signal: FlushedSignal; ourListenerLeft: boolean }[] = [];
  exits = 0;

  exit(): void {
    this.exits++;
  }

  kill(pid: number, signal: FlushedSignal): boolean {
    this.kills.push({ pid, signal, ourListenerLeft: this.listenerCount(signal) > 0 });
    return true;
  }
}

interface Calls {
  flushes: number;
  shutdowns: number;
  errors: string[];
  ends: ShutdownOutcome[];
}

interface Timing {
  idleTimeoutMs?: number;
  maxWaitMs?: number;
  lastProgressAt?: () => number | undefined;
}

function setup(shutdownResult: () => Promise<void> = () => Promise.resolve(), timing: Timing = {}) {
  const { idleTimeoutMs = 1_000, maxWaitMs = 5_000, lastProgressAt } = timing;
  const proc = new FakeProcess();
  const calls: Calls = { flushes: 0, shutdowns: 0, errors: [], ends: [] };
  flushOnExit(
    {
      flush: () => {
        calls.flushes++;
        return Promise.resolve();
      },
      shutdown: () => {
        calls.shutdowns++;
        return shutdownResult();
      },
      idleTimeoutMs,
      maxWaitMs,
      ...(lastProgressAt === undefined ? {} : { lastProgressAt }),
      onError: (what) => calls.errors.push(what),
      onEnd: (outcome) => calls.ends.push(outcome),
    },
    proc,
  );
  return { proc, calls };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('flushOnExit', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s nobody else handles: shut down, then the same signal again with our listener gone', async (signal) => {
    const { proc, calls } = setup();
    proc.emit(signal);
    expect(calls.shutdowns).toBe(1);
    expect(proc.kills).toEqual([]);
    await settle();
    expect(proc.kills).toEqual([{ pid: 4242, signal, ourListenerLeft: false }]);
    expect(calls.flushes).toBe(0);
    expect(calls.ends).toEqual([{ settled: true }]);
  });

  it('a signal the application handles: flush only, no shutdown, nothing raised', async () => {
    const { proc, calls } = setup();
    const appHandled: string[] = [];
    proc.on('SIGTERM', () => appHandled.push('SIGTERM'));
    proc.emit('SIGTERM');
    await settle();
    expect(calls).toEqual({ flushes: 1, shutdowns: 0, errors: [], ends: [] });
    expect(proc.kills).toEqual([]);
    expect(appHandled).toEqual(['SIGTERM']);
  });

  it('a second signal during the shutdown ends the process at once', async () => {
    const { proc, calls } = setup(() => new Promise(() => {}));
    proc.emit('SIGTERM');
    proc.emit('SIGINT');
    expect(proc.kills.map((kill) => kill.signal)).toEqual(['SIGINT']);
    expect(calls.shutdowns).toBe(1);
  });

  it('a shutdown that never finishes is given up after the idle timeout, not the longest wait', async () => {
    const { proc } = setup(() => new Promise(() => {}), { idleTimeoutMs: 20, maxWaitMs: 60_000 });
    proc.emit('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(proc.kills).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(proc.kills.map((kill) => kill.signal)).toEqual(['SIGTERM']);
  });

  it('a failing shutdown is reported, and the signal is still raised again', async () => {
    const failure = new Error('collector down');
    const { proc, calls } = setup(() => Promise.reject(failure));
    proc.emit('SIGTERM');
    await settle();
    expect(calls.errors).toEqual(['shutdown']);
    expect(calls.ends).toEqual([{ settled: true, error: failure }]);
    expect(proc.kills.map((kill) => kill.signal)).toEqual(['SIGTERM']);
  });

  it('beforeExit shuts down once; a later signal waits for that same shutdown', async () => {
    let finish: () => void = () => {};
    const { proc, calls } = setup(() => new Promise<void>((resolve) => (finish = resolve)));
    proc.emit('beforeExit');
    proc.emit('beforeExit');
    expect(calls.shutdowns).toBe(1);
    proc.emit('SIGTERM');
    await settle();
    expect(calls.shutdowns).toBe(1);
    expect(proc.kills).toEqual([]);
    finish();
    await settle();
    expect(proc.kills.map((kill) => kill.signal)).toEqual(['SIGTERM']);
  });

  it('a signal whose shutdown is given up says so once, with the time waited', async () => {
    const { proc, calls } = setup(() => new Promise(() => {}), { idleTimeoutMs: 20 });
    proc.emit('SIGTERM');
    await sleep(60);
    expect(calls.ends).toEqual([{ settled: false, waitedMs: expect.any(Number) }]);
    expect((calls.ends[0] as { waitedMs: number }).waitedMs).toBeGreaterThanOrEqual(19);
  });

  it('a signal: exports that keep succeeding extend the wait, up to the longest wait', async () => {
    const { proc } = setup(() => new Promise(() => {}), { idleTimeoutMs: 30, maxWaitMs: 120, lastProgressAt: () => performance.now() });
    proc.emit('SIGTERM');
    await sleep(70);
    expect(proc.kills, 'still making progress past the idle timeout').toEqual([]);
    await sleep(100);
    expect(proc.kills.map((kill) => kill.signal), 'the longest wait bounds the whole wait').toEqual(['SIGTERM']);
  });
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('flushOnExit: a normal exit (beforeExit) is bounded', () => {
  it('a shutdown that completes: no exit forced, its end reported as settled', async () => {
    const { proc, calls } = setup(() => sleep(5), { idleTimeoutMs: 30 });
    proc.emit('beforeExit');
    await sleep(60);
    expect(proc.exits).toBe(0);
    expect(calls.ends).toEqual([{ settled: true }]);
  });

  it('a shutdown that stalls: reported once after the idle timeout, then the process exits', async () => {
    const { proc, calls } = setup(() => new Promise(() => {}), { idleTimeoutMs: 30 });
    proc.emit('beforeExit');
    await sleep(10);
    expect(proc.exits).toBe(0);
    await sleep(50);
    expect(proc.exits).toBe(1);
    expect(calls.ends).toEqual([{ settled: false, waitedMs: expect.any(Number) }]);
    const waited = (calls.ends[0] as { waitedMs: number }).waitedMs;
    expect(waited).toBeGreaterThanOrEqual(29);
    expect(calls.shutdowns).toBe(1);
  });

  it('exports that keep succeeding extend the wait, up to the signal cap', async () => {
    const { proc } = setup(() => new Promise(() => {}), {
      idleTimeoutMs: 30,
      maxWaitMs: 120,
      lastProgressAt: () => performance.now(),
    });
    proc.emit('beforeExit');
    await sleep(70);
    expect(proc.exits, 'still making progress past the idle timeout').toBe(0);
    await sleep(100);
    expect(proc.exits, 'the longest wait bounds the whole wait').toBe(1);
  });

  it('a failing shutdown is reported once with its error, and the loop ends by itself', async () => {
    const failure = new Error('connect ECONNREFUSED');
    const { proc, calls } = setup(() => Promise.reject(failure), { idleTimeoutMs: 30 });
    proc.emit('beforeExit');
    await sleep(60);
    expect(calls.ends).toEqual([{ settled: true, error: failure }]);
    expect(calls.errors).toEqual(['shutdown']);
    expect(proc.exits).toBe(0);
  });
});
