// The ES-module loader hook's include list (what import-in-the-middle wraps) and when the register
// entry leaves the hook alone. The end-to-end proof, an ES-module app importing every library on
// both SDK generations, is the install matrix (test/install-matrix.test.ts, direct imports).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PoolLeakInstrumentation } from '../../src/instrumentation';
import { loaderIncludes, registerLoaderHook, type LoaderInclude } from '../../src/register/loader-hook';

const includes = loaderIncludes(new PoolLeakInstrumentation({ enabled: false }).getModuleDefinitions());
const patterns = includes.filter((entry): entry is RegExp => entry instanceof RegExp);
const matched = (url: string) => includes.some((entry: LoaderInclude) => (typeof entry === 'string' ? false : entry.test(url)));

/** The ES-module build of the installed postgres.js, as an application's `import` resolves it. */
const postgresSrc = dirname(fileURLToPath(import.meta.resolve('postgres')));

describe('loaderIncludes', () => {
  it('names every package the adapters patch by its bare specifier, once', () => {
    const names = includes.filter((entry): entry is string => typeof entry === 'string');
    expect(names).toEqual(expect.arrayContaining(['pg-pool', 'pg', 'mysql2', 'mariadb', 'generic-pool', 'tarn', 'knex', 'sequelize', 'postgres', '@redis/client']));
    expect(new Set(names).size).toBe(names.length);
  });

  it("matches the files postgres.js's ES-module build imports relatively, which a bare name never does", () => {
    expect(postgresSrc.endsWith(join('node_modules', 'postgres', 'src')), postgresSrc).toBe(true);
    for (const file of ['query.js', 'connection.js']) {
      const path = join(postgresSrc, file);
      expect(existsSync(path), path).toBe(true);
      expect(matched(pathToFileURL(path).href), file).toBe(true);
    }
    // The entry is matched by its specifier, not by a file pattern; other files are not wrapped.
    expect(matched(pathToFileURL(join(postgresSrc, 'index.js')).href)).toBe(false);
    expect(matched(pathToFileURL(join(postgresSrc, 'types.js')).href)).toBe(false);
  });

  it('matches in nested and pnpm layouts, and only the package of that name', () => {
    expect(matched('file:///srv/app/node_modules/.pnpm/postgres@3.4.9/node_modules/postgres/src/query.js')).toBe(true);
    expect(matched('file:///srv/app/node_modules/orm/node_modules/drizzle-orm/query-promise.js')).toBe(true);
    expect(matched('file:///srv/app/node_modules/@redis/client/dist/lib/client/pool.js')).toBe(true);
    expect(matched('file:///srv/app/node_modules/not-postgres/src/query.js')).toBe(false);
    expect(matched('file:///srv/app/node_modules/postgres/src/query.jsx')).toBe(false);
    expect(matched('file:///srv/app/src/postgres/src/query.js')).toBe(false);
  });

  it('writes each file once, with its dots escaped', () => {
    const sources = patterns.map((pattern) => pattern.source);
    expect(new Set(sources).size).toBe(sources.length);
    expect(matched('file:///app/node_modules/postgres/src/queryXjs')).toBe(false);
  });
});

describe('registerLoaderHook', () => {
  it('registers nothing for a -e / -p program', () => {
    expect(registerLoaderHook(includes, { execArgv: ['-e', 'require("pg")'], nodeOptions: undefined })).toBe('skipped-for-eval');
  });

  it('leaves the hook to a loader flag that already brings it', () => {
    const nodeOptions = '--experimental-loader=@opentelemetry/instrumentation/hook.mjs';
    expect(registerLoaderHook(includes, { execArgv: [], nodeOptions })).toBe('already-on-command-line');
  });
});
