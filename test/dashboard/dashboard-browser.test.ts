import { strict as assert } from 'node:assert';
import AxeBuilder from '@axe-core/playwright';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pluginDir } from '../observability/helpers.js';
import { browserMissing, launchChromium } from '../helpers/browser.js';

const ADMIN = 'admin-key-dashboard-browser-0123';
const USER = 'user-key-dashboard-browser-01234';
const VIEWS = ['overview', 'models', 'plugins', 'requests', 'playground'] as const;

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
      plugins: ['dashboard', 'stats', 'model-lifecycle', 'api-openai', 'api-kserve'].map(pluginDir),
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
    // The page draws its sign-in form once its modules load: a Tab before that has nothing to reach.
    await p.locator('#api-key').waitFor();
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
    // A bounded load, 4 requests at a time, that goes on while the pages are watched (at most 1200 requests), so
    // a busy machine that renders late still sees requests in the window the tile shows.
    let loading = true;
    const load = (async () => {
      for (let i = 0; i < 300 && loading; i++)
        await Promise.all([0, 1, 2, 3].map(() => fetch(`${kit.url}/health`).then((r) => r.arrayBuffer())));
    })();
    const moving = `Number(document.querySelector('[data-stat="requestsPerS"] dd')?.textContent) > 0`;
    // Polled with evaluate (which the page's CSP allows) rather than waitForFunction (which needs eval in the page).
    const waitUntil = async (p: Page, expression: string): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        if (await p.evaluate<boolean>(expression)) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.fail(`still false after 10 s: ${expression}`);
    };
    try {
      await waitUntil(admin, moving);
      await waitUntil(user, moving);
      // A new sample comes with the next stats snapshot; the tile may already show one from the history.
      await waitUntil(admin, `Number(document.querySelector('figure.chart')?.getAttribute('data-points')) > ${before}`);
      assert.ok((await tileValue(admin, 'requestsPerS')) > 0);
    } finally {
      loading = false;
      await load;
    }
    // The same samples on both pages: the latest one the admin's page is given is among the user's (a newer sample
    // may arrive between the two reads).
    const times = (p: Page) =>
      p.evaluate<number[]>(
        `fetch('/dashboard/api/history').then(async (r) => (await r.json()).samples.map((s) => s.t))`,
      );
    const adminLast = (await times(admin)).at(-1);
    assert.ok((await times(user)).includes(adminLast!), 'the user is given the sample the admin was given last');

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

  it('chats in the playground with streamed tokens, embeds a text, and runs a tensor model from its form', async () => {
    const p = await page();
    await signIn(p, USER);
    await p.getByRole('link', { name: 'Playground' }).click();
    const model = p.getByLabel('Model', { exact: true });
    await model.locator('option[value="llm:stories260K"]').waitFor({ state: 'attached' });
    await model.selectOption('llm:stories260K');
    // Every text the reply shows on its way, as the page's own DOM changes (not as the test's requests see them).
    await p.evaluate(`(() => {
      window.replyTexts = [];
      const log = document.getElementById('chat-log');
      new MutationObserver(() => {
        const reply = log.querySelector('li.chat-assistant:last-child p');
        if (reply) window.replyTexts.push(reply.textContent);
      }).observe(log, { subtree: true, childList: true, characterData: true });
    })()`);
    await p.getByLabel('Message').fill('Once upon a time');
    // Long enough (240 tokens) that the reply reaches the page in several reads even on a busy machine.
    await p.getByLabel('Max tokens').fill('240');
    await p.getByLabel('Temperature').fill('0');
    await p.getByRole('button', { name: 'Send' }).click();
    await p.getByRole('status').filter({ hasText: 'Done.' }).waitFor();
    const shown = [...new Set(await p.evaluate<string[]>('window.replyTexts'))].filter((t) => t.length > 0);
    const reply = (await p.locator('li.chat-assistant p').textContent()) ?? '';
    assert.ok(
      shown.length > 1,
      `the reply grew in ${shown.length} update(s) before it was done: ${JSON.stringify(shown)}`,
    );
    assert.equal(shown.at(-1), reply);
    for (let i = 1; i < shown.length; i++)
      assert.ok(shown[i]!.startsWith(shown[i - 1]!), 'each update extends the text');
    const direct = await kit.request('/v1/chat/completions', {
      headers: { authorization: `Bearer ${USER}` },
      body: {
        model: 'stories260K',
        messages: [{ role: 'user', content: 'Once upon a time' }],
        max_tokens: 240,
        temperature: 0,
      },
    });
    const answer = direct.body as { choices: { message: { content: string } }[] };
    assert.equal(reply, answer.choices[0]!.message.content, 'the same greedy reply the API gives');

    await model.selectOption('embedding:bert-tiny');
    await p.getByLabel('Text').fill('a short text');
    await p.getByRole('button', { name: 'Embed' }).click();
    const embedded = await kit.request('/v1/embeddings', {
      headers: { authorization: `Bearer ${USER}` },
      body: { model: 'bert-tiny', input: 'a short text' },
    });
    const vector = (embedded.body as { data: { embedding: number[] }[] }).data[0]!.embedding;
    const line = (await p.locator('#embed-result').textContent()) ?? '';
    assert.match(line, new RegExp(`^\\s*${vector.length} dimensions`));
    assert.ok(line.includes(vector[0]!.toFixed(4)), `${line} starts with ${vector[0]}`);

    await model.selectOption('tensor:multi-io');
    // The form has a field per value of each input, made from the model's v2 metadata.
    const features = p.getByRole('group', { name: /^features \(FP32/ });
    await features.waitFor();
    const fields = features.getByRole('spinbutton');
    const count = await fields.count();
    for (let i = 0; i < count; i++) await fields.nth(i).fill(String(i / 4));
    await p
      .getByRole('group', { name: /^category \(INT64/ })
      .getByRole('spinbutton')
      .fill('2');
    await p.getByRole('button', { name: 'Run' }).click();
    await p.locator('tr[data-output="embedding"]').waitFor();
    const expected = await kit.request('/v2/models/multi-io/infer', {
      headers: { authorization: `Bearer ${USER}` },
      body: {
        inputs: [
          {
            name: 'features',
            datatype: 'FP32',
            shape: [1, count],
            data: Array.from({ length: count }, (_, i) => i / 4),
          },
          { name: 'category', datatype: 'INT64', shape: [1], data: [2] },
        ],
      },
    });
    const outputs = (expected.body as { outputs: { name: string; data: number[] }[] }).outputs;
    const bucket = outputs.find((o) => o.name === 'bucket')!;
    const cell = await p.locator('tr[data-output="bucket"] td code').textContent();
    assert.deepEqual(JSON.parse(cell ?? ''), bucket.data, 'the form answers as the API does');
  });

  it('has no serious or critical axe violations on any view, light or dark, and fits 360 px', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      const p = await page({ colorScheme });
      await signIn(p, ADMIN);
      for (const view of VIEWS) {
        await p.goto(`${kit.url}/#${view}`);
        await p.locator(`#${view}-title`).waitFor();
        // The playground is checked with each of its forms open.
        const forms = view === 'playground' ? ['llm:stories260K', 'embedding:bert-tiny', 'tensor:multi-io'] : [''];
        for (const form of forms) {
          if (form) {
            const select = p.getByLabel('Model', { exact: true });
            await select.locator(`option[value="${form}"]`).waitFor({ state: 'attached' });
            await select.selectOption(form);
            await p.locator('form.playground-form button[type="submit"]').waitFor();
          }
          const result = await new AxeBuilder({ page: p }).analyze();
          const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
          assert.deepEqual(
            bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
            [],
            `${view} ${form} in ${colorScheme}`,
          );
        }
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
