import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config';

function resolveWith(options: Parameters<typeof resolveConfig>[0], env: Record<string, string>) {
  const warnings: string[] = [];
  const config = resolveConfig(options, env, (message) => warnings.push(message));
  return { config, warnings };
}

describe('resolveConfig', () => {
  it('defaults: enabled, 50 frames, every library, no warning', () => {
    const { config, warnings } = resolveWith({}, {});
    expect(config.killSwitch).toBe(false);
    expect(config.stackFrames).toBe(50);
    expect(config.checkinStackFrames).toBe(30);
    expect(config.leakThresholdMs).toBe(30_000);
    expect(config.maxMetricCallSites).toBe(100);
    expect([...config.libraries]).toEqual(['pg-pool', 'mysql2', 'mariadb', 'generic-pool', 'tarn', 'sequelize-pool', 'postgres', 'redis']);
    expect(warnings).toEqual([]);
  });

  it('waitThresholdMs: 5000 by default; OTEL_POOL_LEAK_WAIT_THRESHOLD_MS; 0 = off; the code option wins; malformed values warn once and keep the default', () => {
    expect(resolveWith({}, {}).config.waitThresholdMs).toBe(5000);
    expect(resolveWith({}, { OTEL_POOL_LEAK_WAIT_THRESHOLD_MS: '250' }).config.waitThresholdMs).toBe(250);
    expect(resolveWith({}, { OTEL_POOL_LEAK_WAIT_THRESHOLD_MS: '0' }).config.waitThresholdMs).toBe(0);
    expect(resolveWith({ waitThresholdMs: 40 }, { OTEL_POOL_LEAK_WAIT_THRESHOLD_MS: '250' }).config.waitThresholdMs).toBe(40);
    const fromEnv = resolveWith({}, { OTEL_POOL_LEAK_WAIT_THRESHOLD_MS: '5s' });
    expect(fromEnv.config.waitThresholdMs).toBe(5000);
    expect(fromEnv.warnings).toEqual(['pool-leak: OTEL_POOL_LEAK_WAIT_THRESHOLD_MS="5s" is not a whole number >= 0; using the default 5000.']);
    const fromCode = resolveWith({ waitThresholdMs: -1 }, {});
    expect(fromCode.config.waitThresholdMs).toBe(5000);
    expect(fromCode.warnings).toEqual(['pool-leak: option waitThresholdMs=-1 is not a whole number >= 0; using the default 5000.']);
  });

  it('fullStacks: off by default; OTEL_POOL_LEAK_FULL_STACKS; the code option wins; malformed values warn once and keep the default', () => {
    expect(resolveWith({}, {}).config.fullStacks).toBe(false);
    expect(resolveWith({}, { OTEL_POOL_LEAK_FULL_STACKS: 'true' }).config.fullStacks).toBe(true);
    expect(resolveWith({ fullStacks: false }, { OTEL_POOL_LEAK_FULL_STACKS: 'true' }).config.fullStacks).toBe(false);
    const fromEnv = resolveWith({}, { OTEL_POOL_LEAK_FULL_STACKS: 'yes please' });
    expect(fromEnv.config.fullStacks).toBe(false);
    expect(fromEnv.warnings).toEqual(['pool-leak: OTEL_POOL_LEAK_FULL_STACKS="yes please" is not true or false; using the default false.']);
    const fromCode = resolveWith({ fullStacks: 'yes' as unknown as boolean }, {});
    expect(fromCode.config.fullStacks).toBe(false);
    expect(fromCode.warnings).toEqual(['pool-leak: option fullStacks=yes is not true or false; using the default false.']);
  });

  it('reads the environment', () => {
    const { config, warnings } = resolveWith(
      {},
      {
        OTEL_POOL_LEAK_ENABLED: 'false',
        OTEL_POOL_LEAK_STACK_FRAMES: '0',
        OTEL_POOL_LEAK_CHECKIN_STACK_FRAMES: '12',
        OTEL_POOL_LEAK_THRESHOLD_MS: '0',
        OTEL_POOL_LEAK_LIBRARIES: 'pg-pool, tarn',
      },
    );
    expect(config.killSwitch).toBe(true);
    expect(config.stackFrames).toBe(0);
    expect(config.checkinStackFrames).toBe(12);
    expect(config.leakThresholdMs).toBe(0);
    expect([...config.libraries]).toEqual(['pg-pool', 'tarn']);
    expect(warnings).toEqual([]);
  });

  it('code options win over the environment, except the kill switch', () => {
    const { config } = resolveWith(
      { stackFrames: 12, libraries: ['mysql2'], enabled: true },
      { OTEL_POOL_LEAK_ENABLED: 'false', OTEL_POOL_LEAK_STACK_FRAMES: '3', OTEL_POOL_LEAK_LIBRARIES: 'pg-pool' },
    );
    expect(config.killSwitch).toBe(true);
    expect(config.stackFrames).toBe(12);
    expect([...config.libraries]).toEqual(['mysql2']);
  });

  it.each([
    ['OTEL_POOL_LEAK_ENABLED', 'maybe', 'using the default true'],
    ['OTEL_POOL_LEAK_STACK_FRAMES', '-4', 'using the default 50'],
    ['OTEL_POOL_LEAK_STACK_FRAMES', '1e3', 'using the default 50'],
    ['OTEL_POOL_LEAK_STACK_FRAMES', 'lots', 'using the default 50'],
    ['OTEL_POOL_LEAK_LIBRARIES', 'oracle', 'Enabling all libraries'],
    ['OTEL_POOL_LEAK_CHECKIN_STACK_FRAMES', 'x', 'using the default 30'],
    ['OTEL_POOL_LEAK_THRESHOLD_MS', '30s', 'using the default 30000'],
  ])('%s=%s: one warning naming the variable and the default', (name, value, expected) => {
    const { config, warnings } = resolveWith({}, { [name]: value });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(name);
    expect(warnings[0]).toContain(expected);
    expect(config.killSwitch).toBe(false);
    expect(config.stackFrames).toBe(50);
    expect(config.checkinStackFrames).toBe(30);
    expect(config.leakThresholdMs).toBe(30_000);
    expect(config.libraries.size).toBe(8);
  });

  it('an unknown name next to known ones is dropped with one warning', () => {
    const { config, warnings } = resolveWith({}, { OTEL_POOL_LEAK_LIBRARIES: 'pg-pool,mongodb' });
    expect([...config.libraries]).toEqual(['pg-pool']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('mongodb');
  });

  it('a bad code option warns and falls back', () => {
    const { config, warnings } = resolveWith({ stackFrames: 2.5 }, {});
    expect(config.stackFrames).toBe(50);
    expect(warnings[0]).toContain('stackFrames');
  });
});
