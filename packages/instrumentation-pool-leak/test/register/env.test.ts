import { describe, expect, it } from 'vitest';
import { instrumentationSelected, sdkDisabled } from '../../src/register/env';

describe('sdkDisabled', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['false', false],
    ['yes', false],
    ['true', true],
    [' TRUE ', true],
  ])('OTEL_SDK_DISABLED=%o → %s', (value, disabled) => {
    expect(sdkDisabled({ OTEL_SDK_DISABLED: value })).toBe(disabled);
  });
});

describe('instrumentationSelected', () => {
  it.each([
    ['neither list set', {}, true],
    ['enabled list empty', { OTEL_NODE_ENABLED_INSTRUMENTATIONS: ' , ' }, true],
    ['enabled list names it', { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http, pool-leak' }, true],
    ['enabled list names it in capitals', { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'Pool-Leak' }, true],
    ['enabled list names only others', { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,pg' }, false],
    ['disabled list names it', { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'http, pool-leak ' }, false],
    ['disabled list names only others', { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'http' }, true],
    [
      'both lists name it: disabled wins',
      { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'pool-leak', OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'pool-leak' },
      false,
    ],
    ['a name that only contains it', { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'pool-leak-extra' }, false],
  ])('%s', (_case, env, selected) => {
    expect(instrumentationSelected(env)).toBe(selected);
  });
});
