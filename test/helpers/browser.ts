import { existsSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';

/** Debian's chromium: playwright-core drives it and never downloads a browser of its own. */
export const CHROMIUM = '/usr/bin/chromium';

// Headless, and quiet on the network: no update checks, sync or QUIC probes leave the machine. `--headless` picks
// chromium's own headless mode, in which the page has focus (the first Tab reaches it) and renders live updates.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `${CHROMIUM} is missing (apt-get install -y chromium); skipping the browser tests`;
}

/**
 * A headless chromium, for tests that open several contexts (an admin and a user side by side). Playwright gives
 * each launch a fresh temporary profile of its own (it refuses `--user-data-dir` in `args`) and removes it on close.
 */
export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/** A headless chromium with one fresh context, for tests that need a single page's worth of browser. */
export async function openBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const { browser, close } = await launchChromium();
  return { context: await browser.newContext(), close };
}
