// Which @opentelemetry/instrumentation releases hook files inside ES-module packages themselves.
// On the older ones the instrumentation adds the hook (imported-files.ts); the install matrix
// proves it end to end on SDK 2.x (0.209) with postgres.js imported directly.
import { describe, expect, it } from 'vitest';
import { baseHooksImportedFiles, hookImportedFiles } from '../../../src/adapters/kit/imported-files';
import { PoolLeakInstrumentation } from '../../../src/instrumentation';

describe('baseHooksImportedFiles', () => {
  it.each([
    ['0.200.0', false],
    ['0.209.0', false],
    ['0.211.0', false],
    ['0.212.0', true],
    ['0.219.0', true],
    ['0.301.2', true],
    // Unknown: taken as hooking them, so that no file is patched twice.
    ['1.0.0', true],
    [undefined, true],
  ])('@opentelemetry/instrumentation %s → %s', (version, hooks) => {
    expect(baseHooksImportedFiles(version)).toBe(hooks);
  });
});

describe('hookImportedFiles', () => {
  it('adds nothing where the installed release hooks the files itself (this workspace: 0.30x)', () => {
    const instrumentation = new PoolLeakInstrumentation({ enabled: false });
    expect(hookImportedFiles(instrumentation)).toMatch(/^@opentelemetry\/instrumentation 0\.3\d\d\.\d+ hooks files inside ES-module packages itself$/);
  });
});
