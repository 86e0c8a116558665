// An application with more call sites than the stack cache holds: the cache grows (bounded), so
// a checkout from a call site seen before is a hit again instead of a fresh format and parse.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createStackCapture, type CapturedStack } from '../../src/call-site/stack';

const SITES = 64;

/** `SITES` functions in a file of their own, each calling `capture(boundary)` on its own line. */
function distinctCallSites(): ((take: () => CapturedStack | undefined) => CapturedStack | undefined)[] {
  const file = join(mkdtempSync(join(tmpdir(), 'pool-leak-sites-')), 'sites.cjs');
  const lines = Array.from({ length: SITES }, (_, index) => `exports.s${index} = function takeAt${index}(take) { return take(); };`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return Object.values(createRequire(import.meta.url)(file) as Record<string, (take: () => CapturedStack | undefined) => CapturedStack | undefined>);
}

describe('stack cache with more call sites than it holds', () => {
  it('grows in the structured mode too (no stack formatter installed)', () => {
    const saved = Error.prepareStackTrace;
    // What a process without source maps or a test runner has: V8's own formatting.
    Reflect.set(Error, 'prepareStackTrace', undefined);
    try {
      expectRepeatedSitesHit();
    } finally {
      Error.prepareStackTrace = saved;
    }
  });

  it('grows so that repeated call sites hit, and what it returns stays exact', () => {
    expectRepeatedSitesHit();
  });
});

function expectRepeatedSitesHit(): void {
  const capture = createStackCapture({ maxFrames: 10, ownDirs: ['/nonexistent'], cacheSize: 8 });
  const sites = distinctCallSites();
  function take(): CapturedStack | undefined {
    return capture.capture(take);
  }
  const rounds: (CapturedStack | undefined)[][] = [];
  for (let round = 0; round < 4; round++) rounds.push(sites.map((site) => site(take)));
  const [, , third, fourth] = rounds;
  for (let index = 0; index < SITES; index++) {
    expect(fourth![index]).toBe(third![index]);
    expect(fourth![index]?.callSite?.functionName).toBe(`takeAt${index}`);
  }
}
