import assert from 'node:assert/strict';
import { eventBus } from '@nucleus/sdk/testing';
import { WindowRecorder } from '@nucleus/plugin-tuner';

describe('WindowRecorder: the LLM window from the events engines emit', () => {
  it("counts a generation's mean gap once per gap when it did not report its own gaps", () => {
    const bus = eventBus();
    let now = 0;
    const recorder = new WindowRecorder(() => now);
    recorder.attach(bus);
    const end = { model: 'llm', promptTokens: 3, durationMs: 90, finishReason: 'length', priority: 'normal' } as const;
    bus.emit('generation.end', { ...end, requestId: 'a', completionTokens: 5, meanItlMs: 20 });
    bus.emit('generation.end', { ...end, requestId: 'b', completionTokens: 1 });
    now = 2000;
    const { llm } = recorder.take();
    assert.equal(llm.samples, 4, 'five tokens, four gaps; one token has none');
    assert.equal(llm.itlP99Ms, 20);
    assert.equal(llm.tokensPerS, 3, 'six tokens in two seconds');
  });

  it('prefers the gaps a generation reported as it went, and counts its tokens once', () => {
    const bus = eventBus();
    let now = 0;
    const recorder = new WindowRecorder(() => now);
    recorder.attach(bus);
    bus.emit('generation.tokens', { model: 'llm', requestId: 'a', tokens: 3, totalTokens: 3, itlMs: [5, 7] });
    bus.emit('generation.end', {
      model: 'llm',
      requestId: 'a',
      promptTokens: 3,
      completionTokens: 3,
      meanItlMs: 6,
      durationMs: 30,
      finishReason: 'stop',
      priority: 'normal',
    });
    now = 1000;
    const { llm } = recorder.take();
    assert.equal(llm.samples, 2);
    assert.equal(llm.tokensPerS, 3);
  });

  it('counts generations waiting in the admission queue and in replicas, not tensor queues', () => {
    const bus = eventBus();
    const recorder = new WindowRecorder();
    recorder.attach(bus);
    bus.emit('queue.depth', { priority: 'normal', depth: 3 });
    bus.emit('queue.depth', { priority: 'high', depth: 1 });
    bus.emit('queue.depth', { model: 'mlp', priority: 'normal', depth: 50 });
    bus.emit('engine.stats', { model: 'llm', running: 2, waiting: 2 });
    assert.equal(recorder.take().llm.waiting, 6);
    bus.emit('queue.depth', { priority: 'normal', depth: 0 });
    bus.emit('queue.depth', { priority: 'high', depth: 0 });
    assert.equal(recorder.take().llm.waiting, 2, 'the latest depth, not a sum over the window');
  });
});
