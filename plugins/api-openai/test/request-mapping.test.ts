import { refusalOf } from '@nucleus/sdk/testing';
import assert from 'node:assert/strict';
import {
  CHAT_COMPLETION_SCHEMA,
  COMPLETION_SCHEMA,
  chatMessagesOf,
  EMBEDDING_SCHEMA,
  GENERATE_SCHEMA,
  openAiFinishReason,
  refuseUnsupported,
  responseId,
  samplingOf,
  usageBody,
  validator,
} from '@nucleus/plugin-api-openai';

describe('api-openai: request mapping', () => {
  it('maps OpenAI and vLLM sampling fields to the engine’s, null meaning not given', () => {
    assert.deepEqual(
      samplingOf({
        model: 'm',
        max_tokens: 10,
        max_completion_tokens: 20,
        temperature: 0,
        top_p: 0.9,
        top_k: 40,
        n: 2,
        seed: 7,
        stop: '\n',
        frequency_penalty: 0.5,
        presence_penalty: null,
        repetition_penalty: 1.1,
        ignore_eos: true,
        conversation_id: 'c1',
        stream: true,
      }),
      {
        maxTokens: 20,
        temperature: 0,
        topP: 0.9,
        topK: 40,
        n: 2,
        seed: 7,
        stop: ['\n'],
        frequencyPenalty: 0.5,
        repetitionPenalty: 1.1,
        ignoreEos: true,
        conversationId: 'c1',
      },
    );
    // A whole (not streamed) answer is buffered; max_tokens counts when max_completion_tokens is null.
    assert.deepEqual(samplingOf({ model: 'm', max_tokens: 5, max_completion_tokens: null, stop: ['a', 'b'] }), {
      maxTokens: 5,
      stop: ['a', 'b'],
      buffered: true,
    });
  });

  it('reads vLLM’s numeric priority (lower goes first) as Nucleus’s three classes', () => {
    const priority = (p: number | 'high' | 'low') => samplingOf({ model: 'm', stream: true, priority: p }).priority;
    assert.deepEqual([priority(-5), priority(0), priority(3), priority('low')], ['high', 'normal', 'low', 'low']);
  });

  it('flattens text parts of chat content, keeps names, and refuses other parts naming the message', () => {
    assert.deepEqual(
      chatMessagesOf([
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          name: 'ann',
          content: [
            { type: 'text', text: 'Hello, ' },
            { type: 'text', text: 'world' },
          ],
        },
        { role: 'assistant', content: null },
      ]),
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello, world', name: 'ann' },
        { role: 'assistant', content: '' },
      ],
    );
    assert.deepEqual(
      refusalOf(() =>
        chatMessagesOf([
          { role: 'user', content: 'hi' },
          { role: 'user', content: [{ type: 'image_url' }] },
        ]),
      ),
      {
        code: 'unsupported_content',
        message: "messages[1] has a 'image_url' part; only text parts are supported",
        param: 'messages',
      },
    );
  });

  it('refuses fields that would change the output and that it does not do, and lets their neutral values pass', () => {
    for (const [field, value] of [
      ['tools', [{ type: 'function' }]],
      ['logit_bias', { 50256: -100 }],
      ['best_of', 3],
      ['suffix', 'end'],
      ['response_format', { type: 'json_object' }],
    ] as const) {
      assert.deepEqual(
        refusalOf(() => refuseUnsupported({ [field]: value })),
        {
          code: 'unsupported_field',
          message: `'${field}' is not supported by this server`,
          param: field,
        },
      );
    }
    refuseUnsupported({
      tools: [],
      logit_bias: {},
      best_of: 1,
      suffix: '',
      response_format: { type: 'text' },
      user: 'u',
    });
    // Chat completions do tools and response_format themselves.
    refuseUnsupported({ tools: [{ type: 'function' }], response_format: { type: 'json_object' } }, [
      'tools',
      'response_format',
    ]);
  });

  it('answers in OpenAI’s words: finish reasons, usage with cached tokens, prefixed ids', () => {
    assert.deepEqual((['stop', 'length', 'stop_sequence', 'cancelled'] as const).map(openAiFinishReason), [
      'stop',
      'length',
      'stop',
      'stop',
    ]);
    assert.deepEqual(usageBody({ promptTokens: 5, completionTokens: 3, totalTokens: 8 }), {
      prompt_tokens: 5,
      completion_tokens: 3,
      total_tokens: 8,
    });
    assert.deepEqual(
      usageBody({ promptTokens: 5, completionTokens: 3, totalTokens: 8, cachedPromptTokens: 4 }).prompt_tokens_details,
      {
        cached_tokens: 4,
      },
    );
    const id = responseId('chatcmpl');
    assert.match(id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.notEqual(responseId('chatcmpl'), id);
  });
});

describe('api-openai: request schemas', () => {
  const chat = validator(CHAT_COMPLETION_SCHEMA);
  const completion = validator(COMPLETION_SCHEMA);
  const embedding = validator(EMBEDDING_SCHEMA);
  const generate = validator(GENERATE_SCHEMA);

  it('accepts what OpenAI clients send, unknown extra fields included', () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: null, user: 'x' };
    assert.equal(chat(body), body);
    completion({ model: 'm', prompt: [[1, 2], [3]] });
    embedding({ model: 'm', input: ['a', 'b'], encoding_format: 'base64' });
    generate({ model: 'm', prompt: [1, 2, 3] });
  });

  it('a body that is not a JSON object is told to send one', () => {
    for (const body of [undefined, null, 'text', [1]])
      assert.deepEqual(
        refusalOf(() => chat(body)),
        {
          code: 'invalid_request',
          message: 'the request body must be a JSON object (send Content-Type: application/json)',
          param: undefined,
        },
      );
  });

  it('names a missing field, and a field with alternatives by what it may be', () => {
    assert.deepEqual(
      refusalOf(() => chat({ model: 'm' })),
      {
        code: 'missing_field',
        message: "'messages' is a required property",
        param: 'messages',
      },
    );
    assert.deepEqual(
      refusalOf(() => completion({ model: 'm', prompt: [] })),
      {
        code: 'invalid_field',
        message:
          "'prompt' must be a string, a non-empty list of strings, a non-empty list of token ids (integers) or a non-empty list of such lists",
        param: 'prompt',
      },
    );
    assert.equal(refusalOf(() => embedding({ model: 'm', input: ['ok', ''] })).param, 'input');
  });

  it('names the nested field that is wrong, and lists an enum’s values', () => {
    const role = refusalOf(() => chat({ model: 'm', messages: [{ role: 'robot', content: 'x' }] }));
    assert.equal(role.code, 'invalid_field');
    assert.equal(role.param, 'messages');
    assert.match(
      role.message,
      /^'messages\.0\.role' must be one of "system", "developer", "user", "assistant", "tool"$/,
    );
    assert.equal(
      refusalOf(() => embedding({ model: 'm', input: 'x', encoding_format: 'hex' })).message,
      `'encoding_format' must be one of "float", "base64"`,
    );
  });
});
