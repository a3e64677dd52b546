import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { pluginDir, until } from '../observability/helpers.js';
import { auditLines } from './audit-lines.js';

describe('audit-log plugin: reloads the file watcher starts', function () {
  this.timeout(120_000);
  let folder: string;
  let file: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('audit-watcher');
    file = join(folder, 'audit.log');
    writePlugin(folder, { id: 'svc', version: '1.0.0' });
    kit = await startTestKernel({
      plugins: [join(folder, 'svc'), pluginDir('audit-log')],
      builtinModels: false,
      modelPlugins: false,
      config: { 'plugins.watch': true, 'plugin.audit-log.file': file },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('records a reload after a change on disk with actor "watcher" and no key, and a failed one with its code', async () => {
    const watched = () => auditLines(file).filter((l) => l.actor === 'watcher');
    writePlugin(folder, { id: 'svc', version: '1.0.1' });
    // A build writes several files; the watcher may reload more than once, each reported.
    await until(() => watched().length > 0, 'the audit line of the reload', 10_000);
    const [ok] = watched();
    assert.deepEqual(
      [ok!.action, ok!.target, ok!.outcome, ok!.status, ok!.key, ok!.address],
      ['plugins.reload', 'svc', 'ok', 200, undefined, 'local'],
    );
    writePlugin(folder, { id: 'svc', version: '1.0.2', activate: `throw new Error('broken on purpose');` });
    await until(() => watched().some((l) => l.outcome === 'failed'), 'the audit line of the failed reload', 10_000);
    const failed = watched().find((l) => l.outcome === 'failed')!;
    assert.deepEqual(
      [failed.action, failed.target, failed.outcome, failed.status, failed.errorCode],
      ['plugins.reload', 'svc', 'failed', 422, 'plugin_reload_failed'],
    );
    assert.equal(kit.kernel.plugins.list().find((p) => p.id === 'svc')?.version, '1.0.1', 'the running one stays');
  });
});
