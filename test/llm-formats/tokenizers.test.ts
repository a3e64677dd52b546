import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  createTokenizer,
  DEFAULT_CHAT_TEMPLATE,
  inspectGguf,
  readLlama2cTokenizer,
  renderChatTemplate,
  tinyLlamaTokenizer,
  TINY_LLAMA_CHAT_TEMPLATE,
  type LlmTokenizer,
  type TokenizerSpec,
} from '../helpers/llm.js';
import { testVocab } from './gguf-fixtures.js';
import { requireStories, STORIES_DIR } from './llm-module.js';

/** Pushes ids one by one; returns what each push emitted, and the flush. */
function stream(
  tokenizer: LlmTokenizer,
  ids: readonly number[],
  prefix?: readonly number[],
): { pieces: string[]; text: string } {
  const decoder = tokenizer.createStreamDecoder(prefix ? { prefix } : {});
  const pieces = ids.map((id) => decoder.push(id));
  const text = pieces.join('') + decoder.flush();
  return { pieces, text };
}

function sentencePiece(): { tokenizer: LlmTokenizer; pieces: string[] } {
  const v = testVocab();
  const spec: TokenizerSpec = {
    kind: 'sentencepiece',
    ...v,
    bosTokenId: 1,
    eosTokenIds: [2],
    unkTokenId: 0,
    addDummyPrefix: true,
    byteFallback: true,
  };
  return { tokenizer: createTokenizer(spec), pieces: v.pieces };
}

function tinyHf(): LlmTokenizer {
  const { tokenizerJson, tokenizerConfig } = tinyLlamaTokenizer();
  return createTokenizer({ kind: 'hf', tokenizerJson, tokenizerConfig });
}

describe('LLM tokenizers', () => {
  describe('llama2.c (tok512.bin), as run.c encodes', () => {
    it('"Once upon a time" → 1 403 407 261 378, and back', async function () {
      requireStories(this);
      const tokenizer = createTokenizer(await readLlama2cTokenizer(join(STORIES_DIR, 'tok512.bin'), 512));
      const ids = tokenizer.encode('Once upon a time', { addBos: true });
      assert.deepEqual(ids, [1, 403, 407, 261, 378]);
      assert.equal(tokenizer.decode(ids), 'Once upon a time');
      assert.deepEqual(tokenizer.encode('', { addBos: true }), [1]);
      // Characters with no piece become byte tokens (byte b is id b + 3).
      const emoji = tokenizer.encode('🙂');
      assert.deepEqual(emoji.slice(-4), [0xf0 + 3, 0x9f + 3, 0x99 + 3, 0x82 + 3]);
      assert.equal(tokenizer.decode(emoji), '🙂');
    });

    it('the GGUF forms carry the same vocabulary: same ids for the same text', function () {
      requireStories(this);
      for (const file of ['stories260K.gguf', 'stories260K-convert-llama2c.gguf']) {
        const tokenizer = createTokenizer(inspectGguf(join(STORIES_DIR, file)).tokenizer);
        assert.deepEqual(tokenizer.encode('Once upon a time', { addBos: true }), [1, 403, 407, 261, 378], file);
        const text = 'Lily\'s mom said, "Lily, let\'s go to the park."\nThe end. Ünïcode 🙂';
        const ids = tokenizer.encode(text);
        assert.equal(tokenizer.decode(ids), text, file);
      }
    });
  });

  describe('SentencePiece vocabulary (GGUF "llama")', () => {
    it('merges by score (higher first), adds the dummy prefix, falls back to bytes', () => {
      const { tokenizer, pieces } = sentencePiece();
      const names = (text: string): string[] => tokenizer.encode(text).map((id) => pieces[id]!);
      assert.deepEqual(names('abc'), ['▁', 'a', 'bc']);
      assert.deepEqual(names('héllo 🙂'), ['▁héllo', '▁', '<0xF0>', '<0x9F>', '<0x99>', '<0x82>']);
      assert.deepEqual(names('the'), ['▁the']);
    });

    it('reads special tokens written in the text and restarts the dummy prefix after them', () => {
      const { tokenizer, pieces } = sentencePiece();
      const ids = tokenizer.encode('<|user|>the<|user|>hi', { addBos: true });
      assert.deepEqual(
        ids.map((id) => pieces[id]),
        ['<s>', '<|user|>', '▁the', '<|user|>', '▁h', 'i'],
      );
      assert.equal(tokenizer.decode(ids), 'the hi');
      assert.equal(tokenizer.decode(ids, { keepSpecial: true }), '<s><|user|> the<|user|> hi');
      // A BOS already written by a template is not doubled.
      assert.deepEqual(tokenizer.encode('<s>the', { addBos: true }).slice(0, 2), [1, pieces.indexOf('▁the')]);
    });

    it('streams whole UTF-8 characters only, a 4-byte emoji assembled across its byte tokens', () => {
      const { tokenizer } = sentencePiece();
      const ids = tokenizer.encode('héllo 🙂');
      const { pieces, text } = stream(tokenizer, ids);
      assert.equal(text, 'héllo 🙂');
      assert.deepEqual(pieces, ['héllo', ' ', '', '', '', '🙂']);
      for (const p of pieces) assert.ok(!p.includes('\uFFFD'));
      // After a prompt the first piece keeps its leading space.
      assert.equal(stream(tokenizer, ids, [tokenizer.encode('the')[0]!]).text, ' héllo 🙂');
      // Cut off mid-character, the rest comes out on flush as a replacement character.
      assert.equal(stream(tokenizer, ids.slice(0, -1)).text, 'héllo \uFFFD');
    });
  });

  describe('tokenizer.json (@huggingface/tokenizers)', () => {
    it('streams "héllo 🙂" split over byte-level tokens without broken characters', () => {
      const tokenizer = tinyHf();
      const ids = tokenizer.encode('héllo 🙂');
      assert.ok(ids.length >= 6, 'the emoji is several byte tokens in this vocabulary');
      const { pieces, text } = stream(tokenizer, ids);
      assert.equal(text, 'héllo 🙂');
      assert.equal(pieces.at(-1), '🙂');
      assert.deepEqual(pieces.slice(-4, -1), ['', '', '']);
      for (const p of pieces) assert.ok(!p.includes('\uFFFD'));
    });
  });

  describe('GPT-2 byte-level BPE vocabulary (GGUF "gpt2")', () => {
    it('encodes exactly as @huggingface/tokenizers does on the same vocabulary and merges', () => {
      const { tokenizerJson } = tinyLlamaTokenizer();
      const model = tokenizerJson.model as { vocab: Record<string, number>; merges: string[] };
      const added = tokenizerJson.added_tokens as { id: number; content: string }[];
      const pieces: string[] = [];
      for (const [p, id] of Object.entries(model.vocab)) pieces[id] = p;
      for (const t of added) pieces[t.id] = t.content;
      const types = pieces.map((_, id) => (added.some((t) => t.id === id) ? 3 : 1));
      const bpe = createTokenizer({
        kind: 'gpt2-bpe',
        pieces,
        merges: model.merges,
        types,
        bosTokenId: added[0]!.id,
        eosTokenIds: [added[3]!.id],
      });
      const hf = tinyHf();
      for (const text of [
        'Once upon a time, there was a little girl.',
        "They're playing — 42 times!\n\n  ok",
        'héllo 🙂 <|im_start|>user\nHi<|im_end|>',
      ]) {
        assert.deepEqual(bpe.encode(text), hf.encode(text), text);
        assert.equal(bpe.decode(bpe.encode(text), { keepSpecial: true }), text);
      }
      const ids = bpe.encode('héllo 🙂');
      assert.equal(stream(bpe, ids).text, 'héllo 🙂');
    });
  });

  describe('chat templates (@huggingface/jinja)', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];

    it('renders a model template with BOS and the generation prompt', () => {
      assert.equal(
        renderChatTemplate(TINY_LLAMA_CHAT_TEMPLATE, messages, {
          addGenerationPrompt: true,
          bosToken: '<|begin_of_text|>',
        }),
        '<|begin_of_text|><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
      );
      assert.equal(renderChatTemplate(TINY_LLAMA_CHAT_TEMPLATE, messages).endsWith('<|im_end|>\n'), true);
    });

    it('falls back to ChatML when the model brings no template', () => {
      assert.equal(
        renderChatTemplate(undefined, messages, { addGenerationPrompt: true }),
        renderChatTemplate(DEFAULT_CHAT_TEMPLATE, messages, { addGenerationPrompt: true }),
      );
      assert.ok(renderChatTemplate(undefined, messages).startsWith('<|im_start|>system\nBe brief.<|im_end|>'));
    });

    it('raise_exception in a template throws with its message; eos_token and extra variables reach the template', () => {
      const strict =
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}";
      assert.throws(() => renderChatTemplate(strict, messages), /System role not supported/);
      assert.equal(
        renderChatTemplate('{{ eos_token }}|{{ greeting }}', [], { eosToken: '</s>', extra: { greeting: 'hey' } }),
        '</s>|hey',
      );
    });
  });
});
