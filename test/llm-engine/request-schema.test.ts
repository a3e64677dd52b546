import assert from 'node:assert/strict';
import type { GenerateRequest, NucleusError } from '@nucleus/sdk';
import { toWireEmbed, toWireGenerate } from '@nucleus/core/internal/engine/llm/generation/request-schema';

function refusal(check: () => unknown): NucleusError {
  try {
    check();
  } catch (err) {
    return err as NucleusError;
  }
  assert.fail('the request was accepted');
}

describe('generation request schema', () => {
  const generate = (r: Partial<GenerateRequest> & Record<string, unknown>) =>
    refusal(() => toWireGenerate({ model: 'm', ...r } as GenerateRequest));

  it('answers each bad field with 400, invalid_<param> and a message naming the API parameter', () => {
    const cases: [Record<string, unknown>, string, string, RegExp][] = [
      [{ prompt: 'x', n: 17 }, 'invalid_n', 'n', /from 1 to 16/],
      [{ prompt: 'x', temperature: Number.NaN }, 'invalid_temperature', 'temperature', /at least 0/],
      [{ prompt: 'x', topP: 0 }, 'invalid_top_p', 'top_p', /\(0, 1\]/],
      [{ prompt: 'x', topK: -2 }, 'invalid_top_k', 'top_k', /-1 for off/],
      [{ prompt: 'x', maxTokens: 0 }, 'invalid_max_tokens', 'max_tokens', /at least 1/],
      [{ prompt: 'x', seed: 2 ** 60 }, 'invalid_seed', 'seed', /integer/],
      [{ prompt: 'x', stop: Array(17).fill('a') }, 'invalid_stop', 'stop', /at most 16 stop sequences/],
      [{ prompt: 'x', stop: ['a', 3] }, 'invalid_stop', 'stop', /list of strings/],
      [{ prompt: 'x', priority: 'urgent' }, 'invalid_priority', 'priority', /high, normal or low/],
      [{ prompt: 'x', conversationId: '' }, 'invalid_conversation_id', 'conversation_id', /1 to 256/],
      [{ prompt: [1, 'a'] }, 'invalid_prompt', 'prompt', /token ids/],
      [{ messages: [{ role: 'user', content: 'x' }, { role: 1 }] }, 'invalid_messages', 'messages', /messages\[1\]/],
    ];
    for (const [request, code, param, message] of cases) {
      const err = generate(request);
      assert.deepEqual([err.status, err.code, err.param], [400, code, param], JSON.stringify(request));
      assert.match(err.message, message);
    }
  });

  it('needs exactly one of prompt and messages, and reports the first bad field in the schema order', () => {
    assert.equal(generate({}).code, 'missing_prompt');
    assert.match(generate({ prompt: 'x', messages: [] }).message, /not both/);
    assert.equal(generate({ prompt: 'x', n: 0, maxTokens: 0 }).code, 'invalid_n');
  });

  it('turns a valid request into the worker form: defaults filled, top_k -1 as off, empty stops dropped', () => {
    const wire = toWireGenerate({ model: 'm', prompt: 'hi', topK: -1, stop: ['', 'b'], temperature: undefined });
    assert.deepEqual(wire, {
      prompt: 'hi',
      addGenerationPrompt: true,
      n: 1,
      priority: 'normal',
      topK: 0,
      stop: ['b'],
      ignoreEos: false,
    });
  });

  it('checks embedding requests: input shapes, dimensions and pooling', () => {
    assert.deepEqual(toWireEmbed({ model: 'm', input: [1, 2] }).inputs, [[1, 2]]);
    assert.deepEqual(toWireEmbed({ model: 'm', input: ['a', [1]] } as never).inputs, ['a', [1]]);
    const bad = (r: Record<string, unknown>) => refusal(() => toWireEmbed({ model: 'm', ...r } as never));
    assert.equal(bad({ input: [] }).code, 'invalid_input');
    assert.equal(bad({}).code, 'invalid_input');
    assert.equal(bad({ input: 'a', dimensions: 0 }).code, 'invalid_dimensions');
    assert.match(bad({ input: 'a', pooling: 'max' }).message, /not "max"/);
  });
});
