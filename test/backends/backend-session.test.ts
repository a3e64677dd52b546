import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { NucleusEvents } from '@nucleus/sdk';
import { CpuBackend } from '@nucleus/plugin-backend-cpu';
import { CudaBackend } from '@nucleus/plugin-backend-cuda';
import { RocmBackend } from '@nucleus/plugin-backend-rocm';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { BackendSelector, createBackendSession, machine, ortInstall } from './helpers.js';
import { addModel } from './tiny-model.js';

const linux = { platform: 'linux', arch: 'x64', env: {} };
// This machine's onnxruntime-node: the CUDA provider is registered but its libraries were never downloaded.
const ORT_BIN = join(REPO_ROOT, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64');
const cudaLibsHere = existsSync(join(ORT_BIN, 'libonnxruntime_providers_cuda.so'));

async function add(session: ort.InferenceSession): Promise<number[]> {
  const out = await session.run({
    a: new ort.Tensor('float32', [1, 2], [2]),
    b: new ort.Tensor('float32', [3, 4], [2]),
  });
  return Array.from(out.c?.data as Float32Array);
}

function recorder() {
  const fallbacks: Array<NucleusEvents['backend.fallback']> = [];
  const events = {
    emit<K extends keyof NucleusEvents>(type: K, payload: NucleusEvents[K]) {
      if (type === 'backend.fallback') fallbacks.push(payload as NucleusEvents['backend.fallback']);
    },
  };
  return { fallbacks, events };
}

describe('createBackendSession against the real onnxruntime-node', () => {
  before(() => {
    // ORT prints its own error for each provider it fails to load; the fallback reason carries it.
    ort.env.logLevel = 'fatal';
  });

  it('ORT rejects the CUDA provider here: the session falls back to CPU, says why, and runs', async function () {
    if (cudaLibsHere) this.skip();
    const cpu = new CpuBackend();
    // The recorded 2×H100 machine makes the selector choose CUDA; ORT on this machine then refuses it.
    const selector = new BackendSelector([
      cpu,
      new CudaBackend({}, { ...machine('h100x2'), ...ortInstall('cuda12'), ...linux }),
    ]);
    const selection = await selector.select('auto');
    assert.equal(selection.backend.name, 'cuda');
    const { events, fallbacks } = recorder();
    const result = await createBackendSession(addModel(), selection, { fallback: cpu, events });
    const reason =
      'ORT could not create a session on cuda (OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library); running on cpu instead';
    assert.equal(result.backend, cpu);
    assert.equal(result.fallbackReason, reason);
    assert.deepEqual(result.options.executionProviders, ['cpu']);
    assert.deepEqual(fallbacks, [{ requested: 'auto', chosen: 'cpu', reason }]);
    assert.deepEqual(await add(result.session), [4, 6]);
    await result.session.release();
  });

  it('the same for TensorRT first, from a model path', async function () {
    if (cudaLibsHere) this.skip();
    const dir = tempDir('backend-session');
    const path = join(dir, 'add.onnx');
    writeFileSync(path, addModel());
    const cpu = new CpuBackend();
    const cuda = new CudaBackend(
      { tensorrt: { enabled: true, engineCache: false, engineCachePath: '' } },
      { ...machine('h100x2'), ...ortInstall('cuda12'), ...linux },
    );
    const selection = await new BackendSelector([cpu, cuda]).select('cuda');
    assert.equal(selection.probe.executionProviders[0], 'tensorrt');
    const result = await createBackendSession(path, selection, { fallback: cpu });
    assert.equal(
      result.fallbackReason,
      'ORT could not create a session on cuda (OrtSessionOptionsAppendExecutionProvider_TensorRT: Failed to load shared library); running on cpu instead',
    );
    assert.deepEqual(await add(result.session), [4, 6]);
    await result.session.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a provider this onnxruntime-node does not register (MIGraphX) falls back before ORT silently drops it', async () => {
    const cpu = new CpuBackend();
    const rocm = new RocmBackend({}, { ...machine('mi300x'), ...ortInstall('migraphx'), ...linux });
    const selection = await new BackendSelector([cpu, rocm]).select('rocm');
    assert.equal(selection.backend, rocm);
    const registered = ort.listSupportedBackends().map((b) => b.name);
    const result = await createBackendSession(addModel(), selection, { fallback: cpu });
    assert.equal(result.backend, cpu);
    assert.equal(
      result.fallbackReason,
      `onnxruntime-node has no migraphx execution provider (it offers ${registered.join(', ')}); running on cpu instead`,
    );
    assert.deepEqual(await add(result.session), [4, 6]);
    await result.session.release();
  });

  it('a selection that already fell back keeps its reason', async () => {
    const cpu = new CpuBackend();
    const selection = await new BackendSelector([cpu, new CudaBackend()]).select('cuda');
    const result = await createBackendSession(addModel(), selection, { fallback: cpu });
    assert.equal(result.backend, cpu);
    assert.equal(result.fallbackReason, selection.fallbackReason);
    assert.match(result.fallbackReason ?? '', /^backend 'cuda' is unusable: /);
    await result.session.release();
  });

  it("a model ORT cannot load fails on CPU with ORT's own error, and on a GPU backend names both attempts", async () => {
    const cpu = new CpuBackend();
    const broken = addModel('NoSuchOp');
    const onCpu = await new BackendSelector([cpu]).select('cpu');
    await assert.rejects(createBackendSession(broken, onCpu, { fallback: cpu }), /NoSuchOp/);
    if (cudaLibsHere) return;
    const onCuda = await new BackendSelector([
      cpu,
      new CudaBackend({}, { ...machine('h100x2'), ...ortInstall('cuda12'), ...linux }),
    ]).select('cuda');
    await assert.rejects(createBackendSession(broken, onCuda, { fallback: cpu }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'session_create_failed');
      assert.match(
        err.message,
        /^ORT could not create a session on cuda \(OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library\), and on cpu it failed too: .*NoSuchOp/,
      );
      return true;
    });
    await assert.rejects(createBackendSession(addModel(), onCuda), /Failed to load shared library/);
  });
});
