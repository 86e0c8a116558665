// Headless Chromium for tests that look at a page the way a user does: Debian's own build (never a
// browser download), driven by playwright-core. Without it the browser tests are skipped with a
// banner, unless POOL_LEAK_REQUIRE_CHROMIUM=1 (CI sets it): then they fail.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env['POOL_LEAK_CHROMIUM'] ?? '/usr/bin/chromium';
const REQUIRED = process.env['POOL_LEAK_REQUIRE_CHROMIUM'] === '1';

/** True when the browser tests should be skipped (no Chromium, and none required); says so loudly. */
export function skipWithoutChromium(): boolean {
  if (existsSync(CHROMIUM_PATH) || REQUIRED) return false;
  const banner = '!'.repeat(78);
  console.warn(`${banner}\n[browser tests] SKIPPING: no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set POOL_LEAK_CHROMIUM)\n${banner}`);
  return true;
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`POOL_LEAK_REQUIRE_CHROMIUM=1 but there is no Chromium at ${CHROMIUM_PATH}: apt-get install chromium`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
