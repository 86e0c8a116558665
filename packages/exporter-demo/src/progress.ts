// The progress bar of the load, on stderr so stdout stays the report. On a terminal it redraws
// one line in place; elsewhere (CI, tests, a pipe) it prints a line now and then.
import type { RequestResult } from './load';

/** What the bar shows about a pool, read from pg.Pool's own counters. */
export interface PoolGauge {
  /** Short name on the bar (`billing`). */
  readonly label: string;
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
  readonly max: number;
}

const WIDTH = 24;
const TTY_REDRAW_MS = 100;
const PIPE_LINE_MS = 1000;

export class Progress {
  private readonly started = performance.now();
  private done = 0;
  private ok = 0;
  private rejected = 0;
  private failed = 0;
  private lastDraw = 0;
  private drawn = false;
  private lastLine = '';
  private readonly tty: boolean;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    /** Requests the run sends in all (request-plan.ts): the bar is full when all came back. */
    private readonly requests: number,
    private readonly pools: () => readonly PoolGauge[],
  ) {
    this.tty = stream.isTTY === true;
  }

  /** Counts a finished request and redraws when it is time. */
  record(result: RequestResult): void {
    this.done++;
    if (result.status !== undefined && result.status < 400) this.ok++;
    else if (result.status !== undefined && result.status < 500) this.rejected++;
    else this.failed++;
    this.draw(false);
  }

  /** A line of its own above the bar (the bar is redrawn after it). */
  log(line: string): void {
    this.clear();
    this.stream.write(`${line}\n`);
    // On a terminal the bar moves back under the line; in a log it would only repeat itself.
    if (this.tty) this.draw(true);
  }

  /** The final state of the bar, then a newline. */
  finish(): void {
    this.draw(true);
    if (this.tty && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  private draw(force: boolean): void {
    const now = performance.now();
    if (!force && now - this.lastDraw < (this.tty ? TTY_REDRAW_MS : PIPE_LINE_MS)) return;
    this.lastDraw = now;
    const line = this.line(now);
    if (this.tty) {
      this.stream.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else if (line !== this.lastLine) {
      this.stream.write(`${line}\n`);
    }
    this.lastLine = line;
  }

  private clear(): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  private line(now: number): string {
    const elapsed = now - this.started;
    const fraction = Math.min(1, this.done / Math.max(1, this.requests));
    const filled = Math.round(fraction * WIDTH);
    const pools = this.pools().map((pool) => `${pool.label} ${pool.total - pool.idle}/${pool.max} in use, ${pool.waiting} waiting`);
    return (
      `[demo] [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${this.done}/${this.requests} requests ` +
      `| ok ${this.ok}, 4xx ${this.rejected}, failed ${this.failed} | ${pools.join(' | ')} | ${(elapsed / 1000).toFixed(1)}s`
    );
  }
}
