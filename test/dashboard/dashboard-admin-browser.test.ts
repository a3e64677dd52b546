import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import AxeBuilder from '@axe-core/playwright';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { scaleModel, writeVersion } from '../engine/engine-fixtures.js';
import { browserMissing, launchChromium } from '../helpers/browser.js';
import { tempDir } from '../helpers/paths.js';
import { pluginDir } from '../observability/helpers.js';

const ADMIN = 'admin-key-dashboard-admin-0123';
const USER = 'user-key-dashboard-admin-01234';

async function signIn(page: Page, key: string): Promise<void> {
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Views' }).waitFor();
}

async function noSeriousViolations(page: Page, what: string): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    [],
    what,
  );
}

describe('dashboard admin controls in a real browser', () => {
  let kit: TestKernel;
  let dir: string;
  let browser: Browser;
  let close: () => Promise<void>;
  const contexts: BrowserContext[] = [];

  before(async function () {
    const missing = browserMissing();
    if (missing) {
      console.log(`    skipped: ${missing}`);
      this.skip();
    }
    dir = tempDir('dashboard-admin');
    writeVersion(`${dir}/models`, 'scale', '1', scaleModel(1));
    writeVersion(`${dir}/models`, 'scale', '2', scaleModel(2));
    kit = await startTestKernel({
      plugins: ['dashboard', 'model-lifecycle', 'traffic-policy', 'api-kserve', 'rate-limit'].map(pluginDir),
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      builtinModels: false,
      config: {
        modelRepository: `${dir}/models`,
        'auth.keys': [{ key: USER, role: 'user', name: 'viewer' }],
      },
    });
    ({ browser, close } = await launchChromium());
  });
  after(async () => {
    for (const c of contexts) await c.close();
    await close?.();
    await kit?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function page(colorScheme: 'light' | 'dark' = 'light'): Promise<Page> {
    const context = await browser.newContext({ colorScheme, viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    const p = await context.newPage();
    p.on('dialog', (d) => void d.accept());
    await p.goto(kit.url);
    return p;
  }

  const admin = (path: string, init: { method?: string; body?: unknown } = {}) =>
    kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN}` } });

  it('an admin splits a model between its versions and removes the split again', async () => {
    const p = await page();
    await signIn(p, ADMIN);
    await p.getByRole('link', { name: 'Models' }).click();
    const split = p.getByRole('form', { name: 'Traffic split of scale' });
    await split.waitFor();
    assert.equal(await split.locator('[data-traffic="scale"]').textContent(), 'default version only');
    await split.getByLabel('Weight of scale version 1').fill('25');
    await split.getByLabel('Weight of scale version 2').fill('75');
    await split.getByRole('button', { name: 'Set split' }).click();
    await split.locator('[data-traffic="scale"]', { hasText: 'weights: scale@1 25% · scale@2 75%' }).waitFor();
    const set = (await admin('/admin/traffic')).body as { policies: Record<string, unknown> };
    assert.deepEqual(set.policies.scale, {
      type: 'weights',
      variants: [
        { version: '1', weight: 25 },
        { version: '2', weight: 75 },
      ],
    });
    await noSeriousViolations(p, 'models view with a traffic split');

    await split.getByRole('button', { name: 'Remove split' }).click();
    await split.locator('[data-traffic="scale"]', { hasText: 'default version only' }).waitFor();
    const removed = (await admin('/admin/traffic')).body as { policies: Record<string, unknown> };
    assert.equal(removed.policies.scale, undefined);
  });

  it('a split without any weight is refused in the page, and a user sees no traffic controls', async () => {
    const p = await page('dark');
    await signIn(p, ADMIN);
    await p.getByRole('link', { name: 'Models' }).click();
    const split = p.getByRole('form', { name: 'Traffic split of scale' });
    await split.getByLabel('Weight of scale version 1').fill('0');
    await split.getByLabel('Weight of scale version 2').fill('0');
    await split.getByRole('button', { name: 'Set split' }).click();
    await split.getByRole('alert').filter({ hasText: 'give at least one version a weight above 0' }).waitFor();
    const none = (await admin('/admin/traffic')).body as { policies: Record<string, unknown> };
    assert.equal(none.policies.scale, undefined, 'nothing was sent');

    const user = await page();
    await signIn(user, USER);
    await user.getByRole('link', { name: 'Models' }).click();
    await user.locator('tr[data-model="scale"]').waitFor();
    assert.equal(await user.getByRole('form', { name: /Traffic split/ }).count(), 0);
  });

  it('an admin edits a plugin config through a form made from its schema, checked before it is sent', async () => {
    const p = await page();
    await signIn(p, ADMIN);
    await p.getByRole('link', { name: 'Plugins' }).click();
    await p.getByRole('button', { name: 'Configure rate-limit' }).click();
    const form = p.getByRole('form', { name: 'Config of rate-limit' });
    const field = form.getByLabel('default.requestsPerMinute');
    await field.waitFor();
    await field.fill('0');
    await form.getByRole('button', { name: 'Save config' }).click();
    await form.getByRole('alert').filter({ hasText: 'default.requestsPerMinute must be at least 1' }).waitFor();
    const config = async () =>
      (
        (await admin('/admin/config')).body as {
          config: { plugin: Record<string, { default: Record<string, unknown> }> };
        }
      ).config.plugin['rate-limit']!.default;
    assert.equal((await config()).requestsPerMinute, null, 'the page sent nothing');
    await noSeriousViolations(p, 'plugin config form');

    await field.fill('6000');
    await form.getByRole('button', { name: 'Save config' }).click();
    await p.getByRole('status').filter({ hasText: 'Done.' }).waitFor();
    assert.equal((await config()).requestsPerMinute, 6000, 'the server applied it');
    assert.equal(await field.inputValue(), '6000');

    const user = await page();
    await signIn(user, USER);
    const refused = await user.evaluate<number>(
      "fetch('/dashboard/api/plugins/rate-limit/config').then((r) => r.status)",
    );
    assert.equal(refused, 403, 'a user key cannot read plugin config');
    const listed = await user.evaluate<Array<Record<string, unknown>>>(
      "fetch('/dashboard/api/plugins').then(async (r) => (await r.json()).plugins)",
    );
    assert.ok(listed.length > 0 && listed.every((pl) => pl.dir === undefined), 'no plugin folders for a user key');
  });
});
