// Turns the workers' results into the printed report. Pure functions: no I/O here.
import { BASELINE, EMPTY_TASK, FLOOR_TASK, STACKS_OFF, STACKS_ON } from './suites.mjs';

/**
 * Per task and variant: the lowest of the rounds' mean latencies. Whatever else runs on the
 * machine (other processes, the server's own background work) can only add time to a round,
 * never take it away, so the least-disturbed round is the best estimate of the variant's own
 * cost; its own GC and JIT costs are in every round's mean alike.
 *
 * @param runs one entry per worker: { round, variant, results: [{ task, meanUs, spansPerIteration }] }
 */
export function aggregate(runs) {
  const cells = new Map();
  for (const run of runs) {
    for (const result of run.results) {
      const cell = cellOf(cells, result.task, run.variant);
      cell.roundMeans.push(result.meanUs);
      cell.spansPerIteration.push(result.spansPerIteration);
    }
  }
  for (const cell of cells.values()) cell.meanUs = Math.min(...cell.roundMeans);
  return cells;
}

/** One suite's report as text: header, main table, per-round detail, target lines. */
export function formatReport({ node, rounds, suite, cells }) {
  return [
    `${suite.name} checkout cost, ${node}, ${suite.description}, every iteration inside an active parent span;`,
    `each variant in its own process, ${rounds} round(s) interleaved; a cell is the mean of the lowest round; × base = ÷ ${BASELINE}.`,
    '',
    mainTable(suite, cells),
    '',
    roundTable(suite, cells, rounds),
    ...(suite.stackCost !== undefined ? ['', ...stackCostLines(suite, cells)] : []),
    ...(suite.targets.length > 0 ? ['', ...targetLines(suite, cells)] : []),
  ].join('\n');
}

function mainTable(suite, cells) {
  const groups = suite.variants.map((variant) => ({ title: variant.name, columns: ['µs/op', 'ops/s', '× base'] }));
  const rows = suite.tasks.map((task) => {
    const base = cellOf(cells, task.name, BASELINE).meanUs;
    return {
      label: task.name,
      values: suite.variants.map((variant) => {
        const meanUs = cellOf(cells, task.name, variant.name).meanUs;
        // ops/s from the mean latency, so the two columns agree (tinybench's throughput mean
        // is the mean of 1/latency, which a few fast samples pull up).
        return [meanUs.toFixed(1), Math.round(1e6 / meanUs).toLocaleString('en-US'), ratio(meanUs, base)];
      }),
    };
  });
  return renderTable('task', groups, rows);
}

/** Every round's mean, so the reader sees how much of a difference is noise. */
function roundTable(suite, cells, rounds) {
  const columns = Array.from({ length: rounds }, (_, index) => `round ${index + 1}`);
  const groups = [{ title: 'mean µs/op per round', columns: [...columns, 'spread', 'spans/op'] }];
  const rows = [];
  for (const task of suite.tasks) {
    for (const variant of suite.variants) {
      const cell = cellOf(cells, task.name, variant.name);
      // How far the slowest round lies above the reported one: the noise of this cell.
      const spread = Math.max(...cell.roundMeans) / cell.meanUs - 1;
      rows.push({
        label: `${task.name} / ${variant.name}`,
        values: [
          [
            ...cell.roundMeans.map((value) => value.toFixed(1)),
            `${(spread * 100).toFixed(1)}%`,
            median(cell.spansPerIteration).toFixed(2),
          ],
        ],
      });
    }
  }
  return renderTable('task / variant', groups, rows);
}

/**
 * The stack's net cost per checkout, stacks on − stacks off, as a multiple of the floor (the
 * lowest floor any worker of this run measured: the same machine state as the rows beside it).
 */
function stackCostLines(suite, cells) {
  // Per worker: its floor net of its own empty task; the lowest of them.
  const floors = suite.variants.map((variant) => cellOf(cells, FLOOR_TASK, variant.name).meanUs - cellOf(cells, EMPTY_TASK, variant.name).meanUs);
  const floor = Math.min(...floors);
  return [
    `stack net cost per checkout (${STACKS_ON} − ${STACKS_OFF}), floor (net of the empty task) = ${floor.toFixed(2)} µs:`,
    ...suite.stackCost.map(({ task, caller, limit }) => {
      const net = cellOf(cells, task, STACKS_ON).meanUs - cellOf(cells, task, STACKS_OFF).meanUs;
      const multiple = net / floor;
      const verdictText = limit === undefined ? '' : ` ${verdict(multiple, limit)}`;
      return `  ${caller.padEnd(26)} ${net.toFixed(2).padStart(6)} µs = ${multiple.toFixed(2)}× floor${verdictText}`;
    }),
  ];
}

/** One line per target of the suite: the measured ratio and whether it is within the limit. */
function targetLines(suite, cells) {
  return [
    'targets:',
    ...suite.targets.map((target) => {
      const value = cellOf(cells, target.task, target.variant).meanUs / cellOf(cells, target.task, target.versus).meanUs;
      return `  ${target.task}: ${target.variant} / ${target.versus} = ${value.toFixed(3)}× ${verdict(value, target.limit)}`;
    }),
  ];
}

function verdict(value, limit) {
  return value <= limit ? `(within ${limit}×)` : `(ABOVE the ${limit}× target)`;
}

/**
 * A text table whose value columns come in titled groups (one per variant):
 *
 *   task  | group title        | ...
 *         | col  col  col      | ...
 */
export function renderTable(labelTitle, groups, rows) {
  const labelWidth = Math.max(labelTitle.length, ...rows.map((row) => row.label.length));
  const widths = groups.map((group, g) => {
    const columnWidths = group.columns.map((title, c) => Math.max(title.length, ...rows.map((row) => row.values[g][c].length)));
    // A title wider than its columns widens the first column (values are right-aligned).
    const inner = columnWidths.reduce((sum, width) => sum + width, 0) + 2 * (columnWidths.length - 1);
    columnWidths[0] += Math.max(0, group.title.length - inner);
    return columnWidths;
  });
  const line = (label, cells) => [label.padEnd(labelWidth), ...cells].join(' | ');
  const groupCells = (format) => groups.map((group, g) => group.columns.map((_, c) => format(g, c)).join('  '));
  const titles = groups.map((group, g) => group.title.padEnd(widths[g].reduce((sum, width) => sum + width + 2, -2)));
  return [
    line('', titles),
    line(labelTitle, groupCells((g, c) => groups[g].columns[c].padStart(widths[g][c]))),
    line('-'.repeat(labelWidth), groupCells((g, c) => '-'.repeat(widths[g][c]))),
    ...rows.map((row) => line(row.label, groupCells((g, c) => row.values[g][c].padStart(widths[g][c])))),
  ].join('\n');
}

function cellOf(cells, task, variant) {
  const key = `${task}\u0000${variant}`;
  let cell = cells.get(key);
  if (cell === undefined) {
    cell = { roundMeans: [], spansPerIteration: [], meanUs: Number.NaN };
    cells.set(key, cell);
  }
  return cell;
}

function ratio(value, base) {
  return `${(value / base).toFixed(2)}×`;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
