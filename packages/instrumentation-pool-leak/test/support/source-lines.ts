// The line of a marker comment in a test file, so a test can assert `code.line.number` exactly.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** 1-based number of the only line of `fileUrl` that ends with the comment `// line:<name>`. */
export function lineOf(fileUrl: string, name: string): number {
  const comment = `// line:${name}`;
  const lines = readFileSync(fileURLToPath(fileUrl), 'utf8').split('\n');
  const found = lines.flatMap((line, index) => (line.trimEnd().endsWith(comment) ? [index + 1] : []));
  if (found.length !== 1) throw new Error(`${comment} found ${found.length} times`);
  return found[0]!;
}
