import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import type { Locator, Page } from 'playwright-core';
import { browserMissing, openBrowser } from '../helpers/browser.js';
import { REPO_ROOT } from '../helpers/paths.js';

const ADMIN = 'admin-key-0123456789';
const textOf = async (locator: Locator) => ((await locator.textContent()) ?? '').trim();
const USER = 'user-key-0123456789';

describe('API explorer in a browser (/docs)', function () {
  this.timeout(180_000);
  let kit: TestKernel | undefined;
  let browser: Awaited<ReturnType<typeof openBrowser>> | undefined;
  let page: Page;

  before(async function () {
    const missing = browserMissing();
    if (missing) {
      console.log(`      ${missing}`);
      this.skip();
    }
    kit = await startTestKernel({
      plugins: ['api-docs', 'api-kserve'].map((id) => join(REPO_ROOT, 'plugins', id)),
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'auth.keys': [{ key: USER, role: 'user', name: 'u' }] },
    });
    browser = await openBrowser();
    page = await browser.context.newPage();
    // Everything the page loads comes from this server: a request elsewhere fails the test.
    const elsewhere: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(kit!.url) && !r.url().startsWith('data:')) elsewhere.push(r.url());
    });
    await page.goto(new URL('/docs', kit.url).href);
    await page.locator('.swagger-ui .info .title').filter({ hasText: 'Nucleus' }).waitFor();
    assert.deepEqual(elsewhere, []);
  });
  after(async () => {
    await browser?.close();
    await kit?.stop();
  });

  // Expands an operation, presses "Try it out" (once), optionally fills its body, presses Execute and returns the
  // status cell of the live response.
  async function tryIt(operation: Locator, body?: unknown): Promise<Locator> {
    if (!(await operation.locator('.opblock-body').isVisible())) await operation.locator('.opblock-summary').click();
    const tryOut = operation.locator('button.try-out__btn', { hasText: 'Try it out' });
    if (await tryOut.isVisible()) await tryOut.click();
    if (body !== undefined) await operation.locator('textarea.body-param__text').fill(JSON.stringify(body));
    await operation.locator('button.execute').click();
    const status = operation.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor();
    return status;
  }

  it('runs GET /health from the page and shows the 200 answer', async () => {
    const health = page.locator('#operations-health-getHealth');
    const status = await tryIt(health);
    assert.equal(await textOf(status), '200');
    assert.match(await textOf(health.locator('.live-responses-table .response .response-col_description')), /"ok"/);
  });

  it('runs POST /infer with the key entered in the auth dialog, and is refused without it', async () => {
    const infer = page.locator('#operations-native-postInfer');
    const request = { model: 'mlp-classifier', inputs: { input: [[0.1, 0.2, 0.3, 0.4]] } };
    assert.equal(await textOf(await tryIt(infer, request)), '401');

    await page.locator('.auth-wrapper button.authorize').click();
    const dialog = page.locator('.dialog-ux .modal-ux');
    await dialog.locator('input').first().fill(USER);
    await dialog.locator('button.authorize').click();
    await dialog.locator('button.btn-done').click();

    await infer.locator('button.btn-clear').click();
    const status = await tryIt(infer, request);
    const answer = infer.locator('.live-responses-table .response .response-col_description').first();
    assert.equal(await textOf(status), '200', await textOf(answer));
    assert.match(await textOf(answer), /"outputs"/);
    // The page sent the key as a bearer token, as the document's security scheme says.
    assert.match(await textOf(infer.locator('.curl-command')), new RegExp(`Authorization: Bearer ${USER}`));
  });
});

describe('API explorer in a browser, document behind a key', function () {
  this.timeout(180_000);
  let kit: TestKernel | undefined;
  let browser: Awaited<ReturnType<typeof openBrowser>> | undefined;

  before(async function () {
    const missing = browserMissing();
    if (missing) {
      console.log(`      ${missing}`);
      this.skip();
    }
    kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins', 'api-docs')],
      builtinModels: false,
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'auth.keys': [{ key: USER, role: 'user', name: 'u' }], 'plugin.api-docs.public': false },
    });
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await kit?.stop();
  });

  it('asks for a key, says why a wrong one fails, and loads the document with a right one', async () => {
    const page = await browser!.context.newPage();
    await page.goto(new URL('/docs', kit!.url).href);
    const key = page.getByLabel('API key');
    await key.fill('not-a-key');
    await page.getByRole('button', { name: 'Load the API document' }).click();
    await page.getByRole('alert').filter({ hasText: /key/i }).waitFor();
    await key.fill(USER);
    await page.getByRole('button', { name: 'Load the API document' }).click();
    await page.locator('.swagger-ui .info .title').filter({ hasText: 'Nucleus' }).waitFor();
    // The key went to the auth dialog as well, so "Try it out" sends it.
    await page.locator('.auth-wrapper button.authorize.locked').waitFor();
  });
});
