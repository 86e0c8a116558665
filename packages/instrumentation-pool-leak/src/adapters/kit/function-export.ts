/**
 * A module whose export is a function (CommonJS `module.exports`, or an ES namespace's
 * `default`): replaced by `wrap`'s function, carrying the original's own properties.
 */
export function replaceFunctionExport<F extends Function>(moduleExports: unknown, wrap: (original: F) => F): unknown {
  const replace = (original: F): F => {
    const wrapper = wrap(original);
    for (const key of Reflect.ownKeys(original)) {
      if (key === 'prototype' || key === 'arguments' || key === 'caller') continue;
      Object.defineProperty(wrapper, key, Object.getOwnPropertyDescriptor(original, key)!);
    }
    return wrapper;
  };
  if (typeof moduleExports === 'function') return replace(moduleExports as F);
  const namespace = moduleExports as { default?: unknown; [Symbol.toStringTag]?: unknown } | undefined;
  if (namespace?.[Symbol.toStringTag] === 'Module' && typeof namespace.default === 'function') namespace.default = replace(namespace.default as F);
  return moduleExports;
}
