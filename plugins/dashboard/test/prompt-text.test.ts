import { strict as assert } from 'node:assert';
import { MAX_PROMPT_CHARS, promptText } from '@nucleus/plugin-dashboard';

describe('dashboard: the prompt text a request shows', () => {
  it('takes a completion prompt, the last user message of a chat, an embedding input', () => {
    assert.equal(promptText({ prompt: 'Once upon a time' }), 'Once upon a time');
    assert.equal(
      promptText({
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'first' },
          { role: 'assistant', content: 'ok' },
          { role: 'user', content: [{ type: 'text', text: 'second' }, { type: 'image_url' }] },
        ],
      }),
      'second',
    );
    assert.equal(promptText({ input: ['a', 'b'] }), 'a b');
    assert.equal(promptText({ inputs: [{ name: 'x', data: [1] }] }), undefined, 'a tensor request has none');
    assert.equal(promptText('text'), undefined);
  });

  it('cuts a long prompt', () => {
    const text = promptText({ prompt: 'y'.repeat(MAX_PROMPT_CHARS * 2) })!;
    assert.equal(text.length, MAX_PROMPT_CHARS + 1);
    assert.ok(text.endsWith('…'));
  });
});
