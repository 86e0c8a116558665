import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { PACKAGE_NAME, PACKAGE_VERSION } from '../src/version';

it('version.ts matches package.json', () => {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
  expect({ name: PACKAGE_NAME, version: PACKAGE_VERSION }).toEqual({ name: manifest.name, version: manifest.version });
});
