// Which request-parent instrumentations the register entry starts, with the real packages of the
// workspace (auto-instrumentations-node 0.82, instrumentation-http 0.301) and a loader that makes
// chosen ones unresolvable, as when the application did not install them.
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { afterEach, describe, expect, it } from 'vitest';
import { AUTO_BUNDLE, HTTP_INSTRUMENTATION, loadFromApplication, requestParents, type RequestParents } from '../../src/register/request-parents';

const OWN_NAME = 'opentelemetry-instrumentation-pool-leak';
const HTTP_SCOPE = '@opentelemetry/instrumentation-http';
const started: Instrumentation[] = [];

function withHidden(...hidden: string[]) {
  return (name: string) => (hidden.includes(name) ? undefined : loadFromApplication(name));
}

function parents(load: (name: string) => unknown, env: Record<string, string | undefined> = {}, ownName = OWN_NAME): RequestParents {
  const result = requestParents(ownName, load, env);
  started.push(...result.instrumentations);
  return result;
}

function names(result: RequestParents): string[] {
  return result.instrumentations.map((instrumentation) => instrumentation.instrumentationName);
}

afterEach(() => {
  for (const instrumentation of started.splice(0)) instrumentation.disable();
  diag.disable();
});

describe('requestParents', () => {
  it('auto-instrumentations-node installed: its instrumentations, honouring the enabled list', () => {
    const result = parents(loadFromApplication, { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,pg,pool-leak' });
    expect(result.source).toBe('auto-instrumentations-node');
    expect(names(result).sort()).toEqual([HTTP_SCOPE, '@opentelemetry/instrumentation-pg']);
    expect(result.hint).toBeUndefined();
  });

  it('auto-instrumentations-node: the disabled list is honoured, and our short name in it confuses nobody', () => {
    const errors: unknown[] = [];
    const logger: DiagLogger = { error: (...args) => errors.push(args), warn: () => {}, info: () => {}, debug: () => {}, verbose: () => {} };
    diag.setLogger(logger, DiagLogLevel.ERROR);
    const env: Record<string, string | undefined> = {
      OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http, pool-leak,dns',
      OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'dns,pool-leak',
    };
    const before = { ...env };

    const result = parents(loadFromApplication, env);

    expect(names(result)).toEqual([HTTP_SCOPE]);
    // The bundle reports names it does not know; `pool-leak` was kept from it.
    expect(errors).toEqual([]);
    expect(env).toEqual(before);
  });

  it('an entry with our own name is never started a second time', () => {
    const result = parents(loadFromApplication, { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,pg' }, HTTP_SCOPE);
    expect(names(result)).toEqual(['@opentelemetry/instrumentation-pg']);
  });

  it('only instrumentation-http installed: that one', () => {
    const result = parents(withHidden(AUTO_BUNDLE));
    expect(result.source).toBe('instrumentation-http');
    expect(names(result)).toEqual([HTTP_SCOPE]);
    expect(result.hint).toBeUndefined();
  });

  it('only instrumentation-http installed, but http disabled: nothing, and no hint', () => {
    const result = parents(withHidden(AUTO_BUNDLE), { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'http' });
    expect(names(result)).toEqual([]);
    expect(result.hint).toBeUndefined();
  });

  it('neither installed: nothing, and a hint naming both packages', () => {
    const result = parents(withHidden(AUTO_BUNDLE, HTTP_INSTRUMENTATION));
    expect(result.source).toBe('none');
    expect(names(result)).toEqual([]);
    expect(result.hint).toContain(`install ${AUTO_BUNDLE}`);
    expect(result.hint).toContain(HTTP_INSTRUMENTATION);
  });

  it('the enabled list names only pool-leak: nothing else starts, and no hint', () => {
    const result = parents(withHidden(AUTO_BUNDLE, HTTP_INSTRUMENTATION), { OTEL_NODE_ENABLED_INSTRUMENTATIONS: ' pool-leak ' });
    expect(names(result)).toEqual([]);
    expect(result.hint).toBeUndefined();
    expect(parents(loadFromApplication, { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'pool-leak' }).instrumentations).toEqual([]);
  });
});
