import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KERNEL_API_VERSION } from './plugin.js';

/** What {@link scaffoldPlugin} creates. */
export interface ScaffoldOptions {
  /** Plugin id: lowercase words joined by dashes. */
  name: string;
  /** Folder the plugin folder is created in. */
  parentDir: string;
  /** Version of `@nucleus/sdk` to depend on; defaults to this SDK's major range. */
  sdkRange?: string;
}

const ID = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const SDK_RANGE = '^0.1.0';

function camel(id: string): string {
  return id.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** The files of a new plugin, by relative path. */
export function pluginFiles(name: string, sdkRange = SDK_RANGE): Record<string, string> {
  const [major] = KERNEL_API_VERSION.split('.');
  const pkg = {
    name: `nucleus-plugin-${name}`,
    version: '0.1.0',
    description: `The ${name} Nucleus plugin.`,
    type: 'module',
    main: './dist/src/index.js',
    keywords: ['nucleus-plugin'],
    scripts: { build: 'tsc -p .', test: 'node --test dist/test/' },
    nucleus: {
      id: name,
      version: '0.1.0',
      kernelApi: `^${major}.0.0`,
      description: `The ${name} plugin.`,
      entry: './dist/src/index.js',
      provides: [`routes:${name}`],
      configSchema: {
        type: 'object',
        additionalProperties: false,
        properties: { greeting: { type: 'string', default: 'hello', description: `What GET /${name}/hello answers.` } },
      },
    },
    dependencies: { '@nucleus/sdk': sdkRange },
    devDependencies: { '@nucleus/core': sdkRange, '@types/node': '^20.19.0', typescript: '^7.0.0' },
  };
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      rootDir: '.',
      outDir: 'dist',
      types: ['node'],
      skipLibCheck: true,
    },
    include: ['src', 'test'],
  };
  const index = `import { definePlugin, ExtensionPoints } from '@nucleus/sdk';

/** The ${name} plugin's config section (plugin.${name} in the server config). */
export interface ${camel(name)}Config {
  greeting: string;
}

/** Adds GET /${name}/hello. Edit, rebuild, and a running server reloads it in place. */
export default definePlugin<${camel(name)}Config>({
  activate(ctx) {
    // The name puts the route in the group the manifest declares (\`provides: ["routes:${name}"]\`).
    ctx.contribute(
      ExtensionPoints.routes,
      {
        method: 'GET',
        path: '/${name}/hello',
        access: 'public',
        handler: () => ({ plugin: ctx.id, version: ctx.version, message: ctx.config.greeting }),
      },
      { name: '${name}/hello' },
    );
    ctx.logger.info('${name} activated');
  },
});
`;
  const test = `import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startTestKernel } from '@nucleus/sdk/testing';

const pluginDir = fileURLToPath(new URL('../..', import.meta.url));

test('${name} answers GET /${name}/hello with its configured greeting', async () => {
  const kit = await startTestKernel({ plugins: [pluginDir], config: { 'plugin.${name}.greeting': 'hi there' } });
  try {
    assert.equal(kit.kernel.plugins.get('${name}').state, 'active');
    const res = await kit.request('/${name}/hello');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { plugin: '${name}', version: '0.1.0', message: 'hi there' });
  } finally {
    await kit.stop();
  }
});
`;
  const readme = `# ${name}

A Nucleus plugin. \`npm run build\` compiles it, \`npm test\` runs its test against an in-process
kernel, and \`nucleus serve\` loads it from a watched plugin folder (the project's \`plugins/\` or a
folder listed in \`plugins.dirs\`), reloading it in place whenever \`dist/\` changes.
`;
  return {
    'package.json': `${JSON.stringify(pkg, null, 2)}\n`,
    'tsconfig.json': `${JSON.stringify(tsconfig, null, 2)}\n`,
    'src/index.ts': index,
    [`test/${name}.test.ts`]: test,
    'README.md': readme,
    '.gitignore': 'dist/\nnode_modules/\n',
  };
}

/** Writes a new plugin package into `parentDir/name`; refuses an invalid id or an existing folder. */
export function scaffoldPlugin(options: ScaffoldOptions): { dir: string; files: string[] } {
  if (!ID.test(options.name))
    throw new Error(
      `plugin name "${options.name}" must be lowercase letters and digits, words joined by dashes (e.g. "my-hooks")`,
    );
  const dir = join(options.parentDir, options.name);
  if (existsSync(dir)) throw new Error(`${dir} already exists`);
  const files = pluginFiles(options.name, options.sdkRange);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return { dir, files: Object.keys(files) };
}
