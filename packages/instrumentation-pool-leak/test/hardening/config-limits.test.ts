// Every cap and limit has an upper bound: a value above it, from code or from the environment,
// is one warning naming the setting and the bound, and the bound is used. Values at the bound
// pass silently. Through the instrumentation, the warning reaches the OTel diag logger.
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, UPPER_BOUNDS } from '../../src/config';
import { PoolLeakInstrumentation, type PoolLeakInstrumentationConfig } from '../../src';
import { captureDiag, type DiagCapture } from '../support/diag-capture';

function resolveWith(options: PoolLeakInstrumentationConfig, env: Record<string, string> = {}) {
  const warnings: string[] = [];
  const config = resolveConfig(options, env, (message) => warnings.push(message));
  return { config, warnings };
}

const BOUNDED = [
  ['stackFrames', 'OTEL_POOL_LEAK_STACK_FRAMES'],
  ['checkinStackFrames', 'OTEL_POOL_LEAK_CHECKIN_STACK_FRAMES'],
  ['leakThresholdMs', 'OTEL_POOL_LEAK_THRESHOLD_MS'],
  ['maxMetricCallSites', undefined],
] as const;

describe('upper bounds', () => {
  it('every numeric setting has one, and the defaults sit below it', () => {
    for (const [option] of BOUNDED) {
      const bound = UPPER_BOUNDS[option];
      expect(bound, option).toBeDefined();
      expect(resolveWith({}).config[option]).toBeLessThanOrEqual(bound!);
    }
  });

  for (const [option, variable] of BOUNDED) {
    it(`${option}: above the bound in code is clamped with one warning; at the bound it is silent`, () => {
      const bound = UPPER_BOUNDS[option]!;
      const above = resolveWith({ [option]: bound + 1 });
      expect(above.config[option]).toBe(bound);
      expect(above.warnings).toHaveLength(1);
      expect(above.warnings[0]).toContain(option);
      expect(above.warnings[0]).toContain(String(bound));
      const at = resolveWith({ [option]: bound });
      expect(at.config[option]).toBe(bound);
      expect(at.warnings).toEqual([]);
    });

    if (variable !== undefined) {
      it(`${variable}: above the bound is clamped with one warning`, () => {
        const bound = UPPER_BOUNDS[option]!;
        const { config, warnings } = resolveWith({}, { [variable]: '99999999999999' });
        expect(config[option]).toBe(bound);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain(variable);
        expect(warnings[0]).toContain(String(bound));
      });
    }
  }

  it('a number past 2^53 in the environment is clamped, not read as malformed', () => {
    const { config, warnings } = resolveWith({}, { OTEL_POOL_LEAK_THRESHOLD_MS: '9'.repeat(40) });
    expect(config.leakThresholdMs).toBe(UPPER_BOUNDS['leakThresholdMs']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('at most');
  });
});

describe('through the instrumentation', () => {
  let captured: DiagCapture;
  afterEach(() => captured.stop());

  it('maxMetricCallSites: 1e9 gives one diag warning and runs with the bound', () => {
    captured = captureDiag();
    const instrumentation = new PoolLeakInstrumentation({ maxMetricCallSites: 1e9, enabled: false });
    try {
      const lines = captured.linesWith('maxMetricCallSites');
      expect(lines, captured.lines.join('\n')).toHaveLength(1);
      expect(lines[0]).toContain(String(UPPER_BOUNDS['maxMetricCallSites']));
    } finally {
      instrumentation.disable();
    }
  });
});

describe('poolMetrics', () => {
  it('takes auto, all or own from code or OTEL_POOL_LEAK_POOL_METRICS; code wins; auto by default', () => {
    expect(resolveWith({}).config.poolMetrics).toBe('auto');
    expect(resolveWith({}, { OTEL_POOL_LEAK_POOL_METRICS: ' OWN ' }).config.poolMetrics).toBe('own');
    expect(resolveWith({ poolMetrics: 'all' }, { OTEL_POOL_LEAK_POOL_METRICS: 'own' }).config.poolMetrics).toBe('all');
  });

  it('anything else is one warning naming the valid values, and auto', () => {
    const fromEnv = resolveWith({}, { OTEL_POOL_LEAK_POOL_METRICS: 'none' });
    expect(fromEnv.config.poolMetrics).toBe('auto');
    expect(fromEnv.warnings).toHaveLength(1);
    expect(fromEnv.warnings[0]).toContain('auto, all, own');
    const fromCode = resolveWith({ poolMetrics: true as unknown as 'all' });
    expect(fromCode.config.poolMetrics).toBe('auto');
    expect(fromCode.warnings).toHaveLength(1);
  });
});
