// Options the way a misconfigured production would pass them: nothing may throw into the
// application, warnings stay short, and a list that names no library falls back to all of them.
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config';
import { PoolLeakInstrumentation, type PoolLeakInstrumentationConfig } from '../../src';
import { POOL_LIBRARIES } from '../../src/types';

function resolveWith(options: unknown, env: Record<string, string> = {}) {
  const warnings: string[] = [];
  const config = resolveConfig(options as PoolLeakInstrumentationConfig, env, (message) => warnings.push(message));
  return { config, warnings };
}

const ALL = [...POOL_LIBRARIES];

function unprintable(): object {
  return {
    toString() {
      throw new Error('toString is broken');
    },
  };
}

describe('resolveConfig never throws', () => {
  it('null and non-object options resolve to the defaults', () => {
    for (const options of [null, 42, 'pg-pool', true, Symbol('options')]) {
      const { config } = resolveWith(options);
      expect(config.stackFrames).toBe(50);
      expect([...config.libraries]).toEqual(ALL);
    }
  });

  it('a numeric option that is Object.create(null) or whose toString throws warns and keeps the default', () => {
    const bare = resolveWith({ stackFrames: Object.create(null) });
    expect(bare.config.stackFrames).toBe(50);
    expect(bare.warnings).toHaveLength(1);
    expect(bare.warnings[0]).toContain('stackFrames');
    const broken = resolveWith({ leakThresholdMs: unprintable(), maxMetricCallSites: unprintable(), fullStacks: unprintable() });
    expect(broken.config.leakThresholdMs).toBe(30_000);
    expect(broken.config.maxMetricCallSites).toBe(100);
    expect(broken.config.fullStacks).toBe(false);
    expect(broken.warnings).toHaveLength(3);
  });

  it('library names that cannot be printed are warned about, the valid ones kept', () => {
    const { config, warnings } = resolveWith({ libraries: [Object.create(null), unprintable(), 'tarn'] });
    expect([...config.libraries]).toEqual(['tarn']);
    expect(warnings).toHaveLength(1);
  });

  it('a throwing getter or a throwing Proxy is one warning and the default', () => {
    const getter = {
      get stackFrames(): number {
        throw new Error('getter is broken');
      },
    };
    const fromGetter = resolveWith(getter);
    expect(fromGetter.config.stackFrames).toBe(50);
    expect(fromGetter.warnings).toHaveLength(1);
    const trap = new Proxy({}, {
      get() {
        throw new Error('proxy is broken');
      },
      ownKeys() {
        throw new Error('proxy is broken');
      },
    });
    const fromProxy = resolveWith(trap);
    expect(fromProxy.config.leakThresholdMs).toBe(30_000);
    expect([...fromProxy.config.libraries]).toEqual(ALL);
    const librariesProxy = resolveWith({
      libraries: new Proxy(['pg-pool'], {
        get() {
          throw new Error('array proxy is broken');
        },
      }),
    });
    expect([...librariesProxy.config.libraries]).toEqual(ALL);
    expect(librariesProxy.warnings).toHaveLength(1);
  });

  it('cuts long values in warnings', () => {
    const huge = 'x'.repeat(100_000);
    const fromEnv = resolveWith({}, { OTEL_POOL_LEAK_STACK_FRAMES: huge, OTEL_POOL_LEAK_LIBRARIES: huge, OTEL_POOL_LEAK_ENABLED: huge });
    expect(fromEnv.warnings).toHaveLength(3);
    for (const warning of fromEnv.warnings) {
      expect(warning.length).toBeLessThan(400);
      expect(warning).toContain('…');
    }
    const fromCode = resolveWith({ stackFrames: huge, libraries: [huge] });
    expect(fromCode.warnings).toHaveLength(2);
    for (const warning of fromCode.warnings) expect(warning.length).toBeLessThan(400);
  });
});

describe('a library list that names nothing', () => {
  it.each([',', ' , ,', '  ,  '])('OTEL_POOL_LEAK_LIBRARIES=%j warns once and enables all libraries', (raw) => {
    const { config, warnings } = resolveWith({}, { OTEL_POOL_LEAK_LIBRARIES: raw });
    expect([...config.libraries]).toEqual(ALL);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('OTEL_POOL_LEAK_LIBRARIES');
  });

  it.each([[['']], [[' ', '']], [[]]])('libraries: %j warns once and enables all libraries', (libraries) => {
    const { config, warnings } = resolveWith({ libraries });
    expect([...config.libraries]).toEqual(ALL);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('option libraries');
  });
});

describe('PoolLeakInstrumentation accepts what the contrib instrumentations accept', () => {
  it('new PoolLeakInstrumentation(null) and setConfig(null) work as {}', () => {
    const instrumentation = new PoolLeakInstrumentation(null as unknown as PoolLeakInstrumentationConfig);
    try {
      expect(instrumentation.getConfig().enabled).toBe(true);
      instrumentation.setConfig(null as unknown as PoolLeakInstrumentationConfig);
      expect(instrumentation.getConfig().enabled).toBe(true);
    } finally {
      instrumentation.disable();
    }
  });

  it('a config object with a throwing getter or a throwing Proxy does not throw', () => {
    const getter = {
      enabled: false,
      get leakThresholdMs(): number {
        throw new Error('getter is broken');
      },
    } as PoolLeakInstrumentationConfig;
    const fromGetter = new PoolLeakInstrumentation(getter);
    expect(fromGetter.getConfig().enabled).toBe(false);
    const trap = new Proxy({}, {
      get() {
        throw new Error('proxy is broken');
      },
      ownKeys() {
        throw new Error('proxy is broken');
      },
    }) as PoolLeakInstrumentationConfig;
    const fromProxy = new PoolLeakInstrumentation({ enabled: false });
    expect(() => fromProxy.setConfig(trap)).not.toThrow();
    fromProxy.disable();
  });
});
