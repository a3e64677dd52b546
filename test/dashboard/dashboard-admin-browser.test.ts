import { strict as assert } from 'node:assert';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import AxeBuilder from '@axe-core/playwright';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { STORIES_GGUF } from '@nucleus/plugin-builtin-models';
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
  const logged: string[] = [];

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
      plugins: ['dashboard', 'model-lifecycle', 'traffic-policy', 'api-kserve', 'api-openai', 'rate-limit'].map(
        pluginDir,
      ),
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      builtinModels: false,
      logDestination: { write: (line) => void logged.push(line) },
      config: {
        modelRepository: `${dir}/models`,
        models: [{ name: 'story', path: STORIES_GGUF }],
        'logging.level': 'info',
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

  it('shows prompt text only once an admin turns it on, and tails the log with a level filter', async () => {
    const p = await page();
    await signIn(p, ADMIN);
    await p.getByRole('link', { name: 'Requests and alerts' }).click();
    const toggle = p.getByLabel('Show prompt text of new requests');
    assert.equal(await toggle.isChecked(), false, 'off by default');
    const complete = async (prompt: string) => {
      const res = await admin('/v1/completions', { body: { model: 'story', prompt, max_tokens: 4 } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.headers.get('x-request-id')!;
    };
    const hidden = await complete('Lily kept a hidden red kite');
    await p.locator(`tr[data-request="${hidden}"]`).waitFor();
    assert.equal(await p.getByText('hidden red kite').count(), 0, 'no prompt text while it is off');

    const turnedOn = p.waitForResponse((r) => r.url().endsWith('/admin/config') && r.request().method() === 'PATCH');
    await toggle.check();
    await turnedOn;
    const config = (await admin('/admin/config')).body as {
      config: { plugin: { dashboard: { showPrompts: boolean } } };
    };
    assert.equal(config.config.plugin.dashboard.showPrompts, true);
    const shown = await complete('Tom found a shiny blue shell');
    await p.locator(`tr[data-request="${shown}"] td.prompt`, { hasText: 'Tom found a shiny blue shell' }).waitFor();
    assert.equal(await p.locator(`tr[data-request="${hidden}"] td.prompt`).textContent(), '');
    await noSeriousViolations(p, 'requests view with prompts and the log tail');

    // The log tail: a line logged now arrives live, and the level filter hides it above its level.
    const line = p.locator('.log-tail li[data-level="info"]', { hasText: 'traffic policy set' });
    const before = await line.count();
    await admin('/admin/traffic/scale', {
      method: 'PUT',
      body: { type: 'weights', variants: [{ version: '2', weight: 1 }] },
    });
    await p.locator('.log-tail li[data-level="info"]', { hasText: 'traffic policy set' }).nth(before).waitFor();
    await p.getByLabel('Lowest level shown').selectOption('warn');
    assert.equal(await line.count(), 0, 'info lines are hidden at warn');
    const levels = await p.locator('.log-tail li').evaluateAll((els) => els.map((e) => e.getAttribute('data-level')));
    assert.ok(
      levels.every((l) => l === 'warn' || l === 'error' || l === 'fatal'),
      levels.join(','),
    );
    await p.getByLabel('Lowest level shown').selectOption('info');
    await line.first().waitFor();
    const tail = (await admin('/dashboard/api/logs')).body as { lines: Array<Record<string, unknown>> };
    assert.ok(tail.lines.some((l) => l.msg === 'traffic policy set' && l.model === 'scale'));
    assert.ok(
      tail.lines.every((l) => !JSON.stringify(l).includes('shiny blue shell')),
      'no prompt text in the log lines',
    );

    const turnedOff = p.waitForResponse((r) => r.url().endsWith('/admin/config') && r.request().method() === 'PATCH');
    await toggle.uncheck();
    await turnedOff;
    assert.ok(
      logged.some((l) => l.includes('traffic policy set')),
      'the server logged the line the tail showed',
    );
    const user = await page();
    await signIn(user, USER);
    const refused = await user.evaluate<number>("fetch('/dashboard/api/logs').then((r) => r.status)");
    assert.equal(refused, 403, "a user key gets no server's log history");
  });

  it('an admin swaps a model to new weights and both pages show the new version and its size, live', async () => {
    // Two plain files (no repository entry): a load at run time and a swap, as an operator would do them.
    const files = [2, 5].map((factor) => {
      const file = `${dir}/spare/x${factor}/model.onnx`;
      mkdirSync(`${dir}/spare/x${factor}`, { recursive: true });
      writeFileSync(file, scaleModel(factor));
      return file;
    });
    const loaded = await admin('/admin/models', { body: { name: 'spare', source: files[0] } });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    const infer = async () => {
      const res = await admin('/v2/models/spare/infer', {
        body: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 1, 1, 1] }] },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return (res.body as { outputs: Array<{ data: number[] }> }).outputs[0]!.data;
    };
    assert.deepEqual(await infer(), [2, 2, 2, 2]);

    // A user watches the Models view; it is not reloaded and takes no action, so what changes there came over /ws.
    const user = await page('dark');
    await signIn(user, USER);
    await user.getByRole('link', { name: 'Models' }).click();
    const watched = user.locator('tr[data-model="spare"]');
    await watched.locator('.version', { hasText: '1 (default): ready' }).waitFor();
    const weights = watched.locator('td.weights');
    assert.equal(await weights.getAttribute('data-bytes'), String(statSync(files[0]!).size), 'the file the user sees');

    const p = await page();
    await signIn(p, ADMIN);
    await p.getByRole('link', { name: 'Models' }).click();
    const row = p.locator('tr[data-model="spare"]');
    await row.getByLabel('New source for spare').fill(files[1]!);
    await row.getByRole('button', { name: 'Swap' }).click();
    await p.getByRole('status').filter({ hasText: 'Done.' }).waitFor();
    await row.locator('.version', { hasText: '2 (default): ready' }).waitFor();
    await watched.locator('.version', { hasText: '2 (default): ready' }).waitFor();
    assert.deepEqual(
      await watched.locator('.version').allTextContents(),
      ['2 (default): ready'],
      'the old version is gone from the watching page',
    );
    assert.equal(await watched.locator('.state').textContent(), 'ready');
    assert.equal(await weights.getAttribute('data-bytes'), String(statSync(files[1]!).size), 'and the new one');
    assert.match((await weights.textContent()) ?? '', /^\d+(\.\d)? (B|KB)$/);
    const listed = await user.evaluate<
      Array<{ name: string; fileBytes?: number; versions: Array<{ source?: string }> }>
    >("fetch('/dashboard/api/models').then(async (r) => (await r.json()).models)");
    const spare = listed.find((m) => m.name === 'spare')!;
    assert.equal(spare.fileBytes, statSync(files[1]!).size);
    assert.ok(
      listed.every((m) => m.versions.every((v) => v.source === undefined)),
      'a user key sees sizes, not paths',
    );
    assert.deepEqual(await infer(), [5, 5, 5, 5], 'requests go to the new weights');
    await noSeriousViolations(p, 'models view after a swap');
    await noSeriousViolations(user, 'models view after a swap, dark, user');
  });
});
