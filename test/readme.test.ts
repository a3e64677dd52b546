import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configReferenceBlock, README_MARKERS } from '@nucleus/core/internal/cli/readme-reference';
import { REPO_ROOT } from './helpers/paths.js';

describe('README', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

  it('holds the config reference generated from the current schemas (npm run docs updates it)', () => {
    const [start, end] = README_MARKERS;
    const block = readme.slice(readme.indexOf(start) + start.length, readme.indexOf(end)).trim();
    assert.equal(block, configReferenceBlock(), 'README.md config reference is stale: run `npm run docs`');
  });

  it('says in the quick start that setting the admin key makes the inference routes need a key', () => {
    const quickStart = readme.slice(readme.indexOf('Try it:'), readme.indexOf('## Architecture'));
    assert.match(quickStart, /NUCLEUS_ADMIN_KEY=/);
    assert.match(quickStart, /inference routes[^.]*need a key[^.]*401/);
  });

  it('points library users to core/README.md and lists at least ten troubles with their fixes', () => {
    const library = readme.slice(readme.indexOf('## Library use'), readme.indexOf('## Troubleshooting'));
    assert.match(library, /\(core\/README\.md\)/);
    assert.match(library, /Nucleus\.create\(/);
    const troubles = readme.slice(readme.indexOf('## Troubleshooting'));
    const rows = troubles
      .split('\n## ')[0]!
      .split('\n')
      .filter((l) => l.startsWith('| `'));
    assert.ok(rows.length >= 10, rows.join('\n'));
    assert.match(troubles, /port 8080 is in use by another process; pass --port or set server\.port/);
  });

  it('shows the two quick-start commands', () => {
    assert.match(readme, /npm ci && npx nucleus serve/);
    assert.match(readme, /^npm test\b/m);
  });
});
