import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { REPO_ROOT } from '../helpers/paths.js';

interface Component {
  type: string;
  name: string;
  group?: string;
  version?: string;
  purl?: string;
}
interface Bom {
  bomFormat: string;
  specVersion: string;
  metadata: { component: Component };
  components: Component[];
}

// The CycloneDX schemas ship inside @cyclonedx/cyclonedx-library, so the document is checked offline.
const SCHEMAS = join(REPO_ROOT, 'node_modules/@cyclonedx/cyclonedx-library/res/schema');
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

function cycloneDxValidator() {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  // The library's copies refer to each other by their file names; register them under those.
  ajv.addFormat('idn-email', true).addFormat('iri-reference', true);
  for (const file of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    ajv.addSchema({ ...readJson(join(SCHEMAS, file)), $id: `http://cyclonedx.org/schema/${file}` });
  }
  return ajv.compile(readJson(join(SCHEMAS, 'bom-1.6.SNAPSHOT.schema.json')));
}

describe('npm run sbom', function () {
  this.timeout(120_000);
  let bom: Bom;

  before(() => {
    const run = spawnSync('npm', ['run', '--silent', 'sbom'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 100_000 });
    assert.equal(run.status, 0, run.stderr);
    bom = readJson(join(REPO_ROOT, '.cache/release/nucleus.cdx.json')) as unknown as Bom;
  });

  it('writes a CycloneDX 1.6 document that the CycloneDX JSON schema accepts', () => {
    assert.equal(bom.bomFormat, 'CycloneDX');
    assert.equal(bom.specVersion, '1.6');
    const validate = cycloneDxValidator();
    assert.ok(validate(bom), JSON.stringify(validate.errors?.slice(0, 5), null, 2));
    // The schema has teeth: a component of a type CycloneDX does not define is refused.
    assert.equal(validate({ ...bom, components: [{ type: 'gadget', name: 'x' }] }), false);
  });

  it('lists what ships, with versions and package URLs, and no development tool', () => {
    assert.equal(bom.metadata.component.name, 'nucleus');
    const byName = new Map(bom.components.map((c) => [c.group ? `${c.group}/${c.name}` : c.name, c]));
    const installed = (name: string) => readJson(join(REPO_ROOT, 'node_modules', name, 'package.json')).version;
    for (const name of ['onnxruntime-node', 'koa', '@koa/router', 'ws', 'ajv', 'prom-client', 'tsyringe', 'yaml']) {
      const c = byName.get(name);
      assert.ok(c, `${name} is in the SBOM`);
      assert.equal(c.version, installed(name), name);
      assert.equal(c.purl, `pkg:npm/${name.replace('@', '%40')}@${c.version}`);
    }
    for (const dev of ['mocha', 'typescript', '@biomejs/biome', 'node-llama-cpp', '@huggingface/transformers'])
      assert.equal(byName.get(dev), undefined, `${dev} is a development dependency`);
    const plugin = byName.get('@nucleus/plugin-metrics');
    assert.equal(plugin?.version, readJson(join(REPO_ROOT, 'plugins/metrics/package.json')).version);
  });
});
