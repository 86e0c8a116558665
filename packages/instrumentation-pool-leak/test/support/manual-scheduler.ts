import type { SweepScheduler } from '../../src/core/sliced-sweep';

/**
 * A sweep scheduler the test drives: nothing runs until the test says which turn comes next,
 * so a loaded machine cannot slip an interval in between two turns.
 */
export class ManualScheduler implements SweepScheduler {
  private readonly periodic = new Set<() => void>();
  private turns: (() => void)[] = [];

  every(_ms: number, fn: () => void): () => void {
    const entry = () => fn();
    this.periodic.add(entry);
    return () => this.periodic.delete(entry);
  }

  nextTurn(fn: () => void): () => void {
    const entry = () => fn();
    this.turns.push(entry);
    return () => {
      this.turns = this.turns.filter((queued) => queued !== entry);
    };
  }

  /** Runs the turns queued so far (not those they queue); returns how many ran. */
  runTurn(): number {
    const due = this.turns;
    this.turns = [];
    for (const fn of due) fn();
    return due.length;
  }

  /** Fires every periodic callback once, as their interval would. */
  tick(): void {
    for (const fn of [...this.periodic]) fn();
  }

  get pendingTurns(): number {
    return this.turns.length;
  }

  get periodicCount(): number {
    return this.periodic.size;
  }
}
