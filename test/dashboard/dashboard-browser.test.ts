import { strict as assert } from 'node:assert';
import AxeBuilder from '@axe-core/playwright';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pluginDir } from '../observability/helpers.js';
import { browserMissing, launchChromium } from '../helpers/browser.js';

const ADMIN = 'admin-key-dashboard-browser-0123';
const USER = 'user-key-dashboard-browser-01234';
const VIEWS = ['overview', 'models', 'plugins', 'requests'] as const;

// The tile's number, as the page shows it ("1.25" → 1.25; "–" → NaN).
async function tileValue(page: Page, stat: string): Promise<number> {
  return Number(((await page.locator(`[data-stat="${stat}"] dd`).textContent()) ?? '').replace(/[^0-9.]/g, ''));
}

async function signIn(page: Page, key: string): Promise<void> {
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Views' }).waitFor();
}

describe('dashboard in a real browser', () => {
  let kit: TestKernel;
  let browser: Browser;
  let close: () => Promise<void>;
  const contexts: BrowserContext[] = [];

  before(async function () {
    const missing = browserMissing();
    if (missing) {
      console.log(`    skipped: ${missing}`);
      this.skip();
    }
    kit = await startTestKernel({
      plugins: ['dashboard', 'stats', 'model-lifecycle'].map(pluginDir),
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: {
        'auth.keys': [{ key: USER, role: 'user', name: 'viewer' }],
        'plugin.stats.snapshotIntervalMs': 250,
        'plugin.stats.windowS': 2,
      },
    });
    ({ browser, close } = await launchChromium());
  });
  after(async () => {
    for (const c of contexts) await c.close();
    await close?.();
    await kit?.stop();
  });

  async function page(options: { colorScheme?: 'light' | 'dark'; width?: number } = {}): Promise<Page> {
    const context = await browser.newContext({
      colorScheme: options.colorScheme ?? 'light',
      viewport: { width: options.width ?? 1280, height: 900 },
    });
    contexts.push(context);
    const p = await context.newPage();
    p.on('dialog', (d) => void d.accept());
    await p.goto(kit.url);
    return p;
  }

  it('signs in with the keyboard alone and reaches every view', async () => {
    const p = await page();
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate('document.activeElement?.id'), 'api-key', 'the key field takes focus first');
    await p.keyboard.type(ADMIN);
    await p.keyboard.press('Enter');
    await p.getByRole('navigation', { name: 'Views' }).waitFor();
    for (const view of VIEWS.slice(1)) {
      // Tab to the view's link and follow it with Enter.
      for (let i = 0; i < 20; i++) {
        await p.keyboard.press('Tab');
        if ((await p.evaluate("document.activeElement?.getAttribute('href')")) === `#${view}`) break;
      }
      await p.keyboard.press('Enter');
      await p.locator(`#${view}-title`).waitFor();
      const outline = await p.evaluate('getComputedStyle(document.activeElement).outlineStyle');
      assert.equal(outline, 'solid', `the focused link to ${view} shows a focus outline`);
    }
  });

  it('admin and user see the same live samples; a chart moves while a load runs; the user gets 403', async () => {
    const admin = await page();
    await signIn(admin, ADMIN);
    const user = await page();
    await signIn(user, USER);
    const points = async (p: Page) => Number(await p.locator('figure.chart').first().getAttribute('data-points'));
    const before = await points(admin);
    // A short bounded load: 300 requests, 4 at a time.
    for (let i = 0; i < 75; i++)
      await Promise.all([0, 1, 2, 3].map(() => fetch(`${kit.url}/health`).then((r) => r.arrayBuffer())));
    const moving = `Number(document.querySelector('[data-stat="requestsPerS"] dd')?.textContent) > 0`;
    // Polled with evaluate (which the page's CSP allows) rather than waitForFunction (which needs eval in the page).
    const waitUntil = async (p: Page, expression: string): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        if (await p.evaluate<boolean>(expression)) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.fail(`still false after 10 s: ${expression}`);
    };
    await waitUntil(admin, moving);
    await waitUntil(user, moving);
    assert.ok((await points(admin)) > before, 'the chart has new points');
    assert.ok((await tileValue(admin, 'requestsPerS')) > 0);
    // The same sample on both pages: the latest sample time both charts hold.
    const last = (p: Page) =>
      p.evaluate<number>(`fetch('/dashboard/api/history').then(async (r) => (await r.json()).samples.at(-1).t)`);
    assert.equal(await last(admin), await last(user));

    await user.getByRole('link', { name: 'Plugins' }).click();
    await user.locator('tr[data-plugin="stats"]').waitFor();
    assert.equal(await user.getByRole('button', { name: /Reload/ }).count(), 0, 'no controls for a user key');
    const status = await user.evaluate<number>(`(async () => {
      const session = await (await fetch('/dashboard/api/session')).json();
      const res = await fetch('/admin/plugins/stats/reload', {
        method: 'POST',
        headers: { 'x-csrf-token': session.csrfToken },
      });
      return res.status;
    })()`);
    assert.equal(status, 403, 'the server refuses the user session an admin action');
  });

  it('an admin reloads a plugin, sees a swap fail with the server message, and unloads a model', async () => {
    const p = await page();
    await signIn(p, ADMIN);
    await p.getByRole('link', { name: 'Plugins' }).click();
    await p.getByRole('button', { name: 'Reload stats' }).click();
    await p.getByRole('status').filter({ hasText: 'Done.' }).waitFor();

    await p.getByRole('link', { name: 'Models' }).click();
    const row = p.locator('tr[data-model="mlp-classifier"]');
    await row.waitFor();
    await row.getByLabel('New source for mlp-classifier').fill('/nowhere/model.onnx');
    await row.getByRole('button', { name: 'Swap' }).click();
    const alert = p.getByRole('alert');
    await alert.waitFor();
    const shown = await alert.textContent();
    const direct = await kit.request('/admin/models/mlp-classifier/swap', {
      headers: { authorization: `Bearer ${ADMIN}` },
      body: { source: '/nowhere/model.onnx' },
    });
    assert.equal(shown ?? '', (direct.body as { error: { message: string } }).error.message, 'shown verbatim');

    await row.getByRole('button', { name: 'Unload mlp-classifier' }).click();
    // A built-in model stays listed once unloaded, as unavailable (a load brings it back).
    await row.locator('.state', { hasText: 'unavailable' }).waitFor({ timeout: 15_000 });
  });

  it('has no serious or critical axe violations on any view, light or dark, and fits 360 px', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      const p = await page({ colorScheme });
      await signIn(p, ADMIN);
      for (const view of VIEWS) {
        await p.goto(`${kit.url}/#${view}`);
        await p.locator(`#${view}-title`).waitFor();
        const result = await new AxeBuilder({ page: p }).analyze();
        const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
        assert.deepEqual(
          bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
          [],
          `${view} in ${colorScheme}`,
        );
      }
    }
    const narrow = await page({ width: 360 });
    await signIn(narrow, USER);
    for (const view of VIEWS) {
      await narrow.goto(`${kit.url}/#${view}`);
      await narrow.locator(`#${view}-title`).waitFor();
      const width = await narrow.evaluate<number>('document.documentElement.scrollWidth');
      assert.ok(width <= 360, `${view} is ${width} px wide at a 360 px viewport`);
    }
  });

  it('the overview loads in under 300 KB transferred (gzip)', async () => {
    const context = await browser.newContext();
    contexts.push(context);
    const p = await context.newPage();
    const sizes: Promise<number>[] = [];
    p.on('requestfinished', (r) => sizes.push(r.sizes().then((s) => s.responseBodySize + s.responseHeadersSize)));
    await p.goto(kit.url);
    await signIn(p, USER);
    await p.locator('#overview-title').waitFor();
    await p.waitForLoadState('networkidle');
    const total = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
    console.log(`      overview transferred ${(total / 1024).toFixed(1)} KB in ${sizes.length} responses`);
    assert.ok(total < 300 * 1024, `${total} bytes`);
  });
});
