import { configOf } from '../helpers/config.js';
import { testFormats } from '../helpers/llm.js';
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, Contribution, ExtensionPointView } from '@nucleus/sdk';
import { chooseGraphStyle } from '../helpers/llm.js';
import { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { TypedEventBus } from '@nucleus/core/internal/kernel/event-bus';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { generateAll } from './engine-helpers.js';

describe('chooseGraphStyle', () => {
  it('builds contrib graphs for the CPU backend and generic ones for any other; a configured style wins; export folders stay generic', () => {
    assert.equal(chooseGraphStyle({ builtByNucleus: true, backend: 'cpu' }).style, 'contrib');
    assert.equal(chooseGraphStyle({ builtByNucleus: true, backend: 'cuda' }).style, 'generic');
    assert.match(chooseGraphStyle({ builtByNucleus: true, backend: 'cuda' }).reason, /cuda backend/);
    assert.equal(chooseGraphStyle({ builtByNucleus: true, backend: 'rocm' }).style, 'generic');
    assert.equal(chooseGraphStyle({ builtByNucleus: true, backend: 'cpu', configured: 'generic' }).style, 'generic');
    assert.equal(chooseGraphStyle({ builtByNucleus: true, backend: 'cuda', configured: 'contrib' }).style, 'contrib');
    assert.equal(chooseGraphStyle({ builtByNucleus: false, backend: 'cpu' }).style, 'generic');
    assert.equal(chooseGraphStyle({ builtByNucleus: false, backend: 'cpu', configured: 'contrib' }).style, 'generic');
  });
});

/**
 * A backend that ranks above the CPU and is not it, whose sessions run on ORT's CPU execution provider: what the
 * engine decides for a GPU backend, run on this machine.
 */
const ACCELERATOR: Backend = {
  name: 'accelerator',
  rank: 100,
  probe: () => Promise.resolve({ usable: true, devices: [], executionProviders: ['cpu'] }),
  sessionOptions: () => ({ executionProviders: ['cpu'], intraOpNumThreads: 1 }),
};

function backends(list: Backend[]): ExtensionPointView<Backend> {
  const contributions = list.map(
    (value) =>
      ({ value, name: value.name, priority: 0, pluginId: 'test', pluginVersion: '0.1.0' }) as Contribution<Backend>,
  );
  return {
    id: 'backend',
    list: () => contributions,
    first: () => contributions[0],
    find: (n) => contributions.find((c) => c.name === n),
    use: (c, fn) => Promise.resolve(fn(c.value)),
    onChange: () => () => undefined,
  };
}

const read = (name: string) => readFileSync(join(STORIES_DIR, name), 'utf8');

describe('GenerationEngine picks the graph style by the backend the model runs on (stories260K)', () => {
  const engines: GenerationEngine[] = [];
  const start = async (models: Record<string, unknown>[], backend?: string): Promise<GenerationEngine> => {
    const logger = createLogger({ level: 'silent' });
    const values: Record<string, unknown> = { models, 'scheduler.batchWindowMs': 5, ...(backend && { backend }) };
    const engine = new GenerationEngine({
      config: configOf(values),
      events: new TypedEventBus(logger),
      logger,
      backends: backends([ACCELERATOR]),
      formats: testFormats,
    });
    engines.push(engine);
    await engine.start();
    return engine;
  };
  before(function () {
    requireStories(this);
  });
  after(async () => {
    for (const e of engines) await e.stop();
  });

  const path = join(STORIES_DIR, 'stories260K.gguf');
  const greedy = async (engine: GenerationEngine): Promise<number[]> =>
    (
      await generateAll(engine, {
        model: 'stories',
        prompt: 'Once upon a time',
        maxTokens: 20,
        temperature: 0,
        ignoreEos: true,
      })
    ).tokens[0]!;

  it('generic on another backend, contrib on the CPU one, either when configured; each gives the reference', async () => {
    const fromPrompt = parseIds(read('reference-prompt-64.ids.txt'));
    const expected = fromPrompt.next.slice(fromPrompt.prompt.length - 1, fromPrompt.prompt.length - 1 + 20);
    const cases: [Record<string, unknown>, string | undefined, 'generic' | 'contrib'][] = [
      [{ name: 'stories', path }, undefined, 'generic'],
      [{ name: 'stories', path }, 'cpu', 'contrib'],
      [{ name: 'stories', path, graphStyle: 'contrib' }, undefined, 'contrib'],
      [{ name: 'stories', path, graphStyle: 'generic' }, 'cpu', 'generic'],
    ];
    for (const [model, backend, style] of cases) {
      const engine = await start([model], backend);
      assert.equal(engine.get('stories').graphStyle, style, `${JSON.stringify(model)} on ${backend ?? 'auto'}`);
      assert.deepEqual(await greedy(engine), expected, `${style} on ${backend ?? 'auto'}`);
    }
  });
});
