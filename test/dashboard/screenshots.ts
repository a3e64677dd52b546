// Regenerates the dashboard's screenshots (`npm run screenshots`): a real server, a short load so the charts have
// something to show, and each view in light and dark at a desktop width.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { pluginDir } from '../observability/helpers.js';
import { browserMissing, launchChromium } from '../helpers/browser.js';

const KEY = 'screenshot-admin-key-0123456789';
const OUT = join(REPO_ROOT, 'plugins', 'dashboard', 'screenshots');

const missing = browserMissing();
if (missing) {
  console.error(`cannot take screenshots: ${missing}`);
  process.exit(2);
}
mkdirSync(OUT, { recursive: true });
const kit = await startTestKernel({
  plugins: ['dashboard', 'stats', 'model-lifecycle', 'api-openai', 'api-kserve', 'traffic-policy'].map(pluginDir),
  env: { NUCLEUS_ADMIN_KEY: KEY },
  config: { 'plugin.stats.snapshotIntervalMs': 250, 'plugin.stats.windowS': 2, 'logging.level': 'info' },
  // The log tail shows these lines; the terminal does not.
  logDestination: { write: () => {} },
});
const { browser, close } = await launchChromium();
try {
  for (let i = 0; i < 40; i++) {
    await Promise.all([0, 1, 2, 3].map(() => fetch(`${kit.url}/health`).then((r) => r.arrayBuffer())));
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const colorScheme of ['light', 'dark'] as const) {
    const context = await browser.newContext({ colorScheme, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(kit.url);
    await page.getByLabel('API key').fill(KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    for (const view of ['overview', 'models', 'plugins', 'requests', 'playground']) {
      await page.goto(`${kit.url}/#${view}`);
      await page.locator(`#${view}-title`).waitFor();
      if (view === 'playground') {
        const model = page.getByLabel('Model', { exact: true });
        await model.locator('option[value="llm:stories260K"]').waitFor({ state: 'attached' });
        await model.selectOption('llm:stories260K');
        await page.getByLabel('Message').fill('Once upon a time');
        await page.getByRole('button', { name: 'Send' }).click();
        await page.getByRole('status').filter({ hasText: 'Done.' }).waitFor();
      }
      await page.waitForTimeout(300);
      const file = join(OUT, `${view}-${colorScheme}.png`);
      await page.screenshot({ path: file, fullPage: false });
      console.log(file);
    }
    await context.close();
  }
} finally {
  await close();
  await kit.stop();
}
