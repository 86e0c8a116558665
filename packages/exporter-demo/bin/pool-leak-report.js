#!/usr/bin/env node
// Entry of the `pool-leak-report` command; the code is the compiled src/report-cli.ts (npm run build).
'use strict';
let cli;
try {
  cli = require('../build/report-cli.js');
} catch (error) {
  if (error && error.code === 'MODULE_NOT_FOUND') {
    process.stderr.write('pool-leak-report: not built yet; run `npm run build` in the repository root first.\n');
    process.exit(1);
  }
  throw error;
}
process.exitCode = cli.runReportCli(process.argv.slice(2));
