import { strict as assert } from 'node:assert';
import { readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestKernel } from '@nucleus/sdk/testing';
import { GGML, writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { f32Bytes, m, writeGguf } from '../llm-formats/gguf-writer.js';
import { tempDir } from '../helpers/paths.js';
import { admin, errorOf, startLifecycleKernel, streamCompletion } from '../model-lifecycle/lifecycle-fixtures.js';
import { mapLimit } from '../helpers/map-limit.js';
import { serveFailure } from '../helpers/server-child.js';

/** A hostile GGUF and the fragment of the error that names its problem. */
interface Hostile {
  label: string;
  write(path: string): void;
  says: RegExp;
}

const HOSTILE: Hostile[] = [
  {
    label: 'a truncated tensor',
    write: (path) => {
      writeTestLlamaGguf(path);
      truncateSync(path, statSync(path).size - 100);
    },
    says: /tensor output\.weight \(F16 \[32, \d+\], \d+ bytes\) ends at byte \d+, past the end of the file \(\d+ bytes\): the file is truncated/,
  },
  {
    label: 'an absurd tensor count',
    write: (path) => {
      writeTestLlamaGguf(path);
      const bytes = readFileSync(path);
      bytes.writeBigUInt64LE(2n ** 40n, 8);
      writeFileSync(path, bytes);
    },
    says: /the header declares 1099511627776 tensors \(at least \d+ bytes\), but only \d+ bytes of the file remain/,
  },
  {
    label: 'an absurd dimension',
    write: (path) =>
      writeTestLlamaGguf(path, {
        tensors: (ts) => ts.map((t) => (t.name === 'token_embd.weight' ? { ...t, dims: [32, 2 ** 50] } : t)),
      }),
    says: /tensor token_embd\.weight declares dimensions \[32, 1125899906842624\], more than 2\^53 values/,
  },
  {
    label: 'three million layers in a tiny file',
    write: (path) => {
      writeGguf(
        path,
        {
          'general.architecture': m.str('llama'),
          'llama.block_count': m.u32(3_000_000),
          'llama.embedding_length': m.u32(4),
          'llama.attention.head_count': m.u32(1),
        },
        [{ name: 'blk.0.attn_norm.weight', dims: [4], type: GGML.F32, data: f32Bytes(new Float32Array(4)) }],
      );
      assert.ok(statSync(path).size < 400, `${statSync(path).size} bytes`);
    },
    says: /llama\.block_count (is )?3000000/,
  },
  {
    label: 'an unknown tensor type',
    write: (path) =>
      writeTestLlamaGguf(path, {
        tensors: (ts) => ts.map((t) => (t.name === 'blk.0.attn_q.weight' ? { ...t, type: 99 } : t)),
      }),
    says: /tensor blk\.0\.attn_q\.weight has unknown ggml type 99/,
  },
  {
    label: 'a tensor type Nucleus does not read',
    write: (path) =>
      writeTestLlamaGguf(path, {
        tensors: (ts) =>
          ts.map((t) =>
            t.name === 'blk.1.ffn_up.weight'
              ? { ...t, type: GGML.IQ2_XXS, data: new Uint8Array((2048 / 256) * 66) }
              : t,
          ),
      }),
    says: /IQ2_XXS.*blk\.1\.ffn_up\.weight/,
  },
  {
    label: 'an unknown architecture',
    write: (path) => writeTestLlamaGguf(path, { metadata: { 'general.architecture': m.str('gpt-neox') } }),
    says: /architecture "gpt-neox"/,
  },
];

describe('hostile GGUF files are refused, naming the problem, and the server keeps serving', function () {
  this.timeout(180_000);
  const dir = tempDir('hostile-gguf');
  const paths = HOSTILE.map((h, i) => {
    const path = join(dir, `hostile-${i}.gguf`);
    h.write(path);
    return path;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a run-time load answers 422 with the problem; the model already loaded keeps answering', async () => {
    let kit: TestKernel | undefined;
    try {
      kit = await startLifecycleKernel();
      const good = join(dir, 'good.gguf');
      writeTestLlamaGguf(good);
      const loaded = await admin(kit, '/admin/models', { method: 'POST', body: { name: 'good', source: good } });
      assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
      const before = await streamCompletion(kit, { model: 'good', prompt: 'the abc', max_tokens: 6 });
      assert.ok(before.complete, JSON.stringify(before));

      for (const [i, h] of HOSTILE.entries()) {
        const res = await admin(kit, '/admin/models', { method: 'POST', body: { name: `bad-${i}`, source: paths[i] } });
        assert.deepEqual(
          [res.status, errorOf(res).code],
          [422, 'model_load_failed'],
          `${h.label}: ${JSON.stringify(res.body)}`,
        );
        assert.match(errorOf(res).message, h.says, h.label);
        const after = await streamCompletion(kit, { model: 'good', prompt: 'the abc', max_tokens: 6 });
        assert.deepEqual([after.complete, after.text], [true, before.text], `after ${h.label}`);
      }
      // A swap onto a hostile file is refused the same way and leaves the old version serving.
      const swap = await admin(kit, '/admin/models/good/swap', { method: 'POST', body: { source: paths[3] } });
      assert.equal(swap.status, 422);
      assert.match(errorOf(swap).message, /llama\.block_count (is )?3000000.*version 1 keeps serving/s);
      const models = (await admin(kit, '/admin/models')).body as { models: { name: string; state: string }[] };
      assert.deepEqual(
        models.models.filter((x) => x.name === 'good' || x.name.startsWith('bad-')).map((x) => [x.name, x.state]),
        [['good', 'ready']],
      );
    } finally {
      await kit?.stop();
    }
  });

  it('`nucleus serve --model x=FILE` exits with code 2 and the problem', async () => {
    const runs = await mapLimit(paths, (path) => serveFailure(`x=${path}`));
    for (const [i, h] of HOSTILE.entries()) {
      const run = runs[i]!;
      assert.equal(run.code, 2, `${h.label}: ${run.err}`);
      assert.match(run.err, /model 'x' failed to load/, h.label);
      assert.match(run.err, h.says, `${h.label}: ${run.err}`);
    }
  });
});
