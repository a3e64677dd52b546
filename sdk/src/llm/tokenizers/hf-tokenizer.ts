import { Tokenizer } from '@huggingface/tokenizers';
import type { LlmTokenizer } from '../decoder-model.js';
import { WindowStreamDecoder, type StreamDecoder, type StreamDecoderOptions } from './stream-decoder.js';

interface TokenizerConfigJson {
  bos_token?: string | { content?: string };
  eos_token?: string | { content?: string };
  add_bos_token?: boolean;
}

interface TokenizerJson {
  model?: { vocab?: Record<string, number> | [string, number][] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  post_processor?: unknown;
}

/** What an HF tokenizer spec can be told beyond the two JSON files (from config.json / generation_config.json). */
export interface HfTokenizerIds {
  bosTokenId?: number;
  eosTokenIds?: number[];
}

/** A tokenizer.json tokenizer run by @huggingface/tokenizers, with BOS/EOS resolved the way transformers does. */
export class HfTokenizer implements LlmTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenIds: readonly number[];
  private readonly tokenizer: Tokenizer;
  private readonly addsBos: boolean;
  private readonly specialIds: Set<number>;

  constructor(tokenizerJson: unknown, tokenizerConfig: unknown, ids: HfTokenizerIds = {}) {
    const json = tokenizerJson as TokenizerJson;
    const config = (tokenizerConfig ?? {}) as TokenizerConfigJson;
    this.tokenizer = new Tokenizer(json, config);
    const tokenId = (t: string | { content?: string } | undefined): number | undefined => {
      const text = typeof t === 'string' ? t : t?.content;
      return text === undefined ? undefined : this.tokenizer.token_to_id(text);
    };
    const bos = ids.bosTokenId ?? tokenId(config.bos_token);
    if (bos !== undefined) this.bosTokenId = bos;
    const eos = ids.eosTokenIds ?? [tokenId(config.eos_token)].filter((v): v is number => v !== undefined);
    this.eosTokenIds = [...new Set(eos)];
    this.specialIds = new Set((json.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
    const vocab = this.tokenizer.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    // transformers adds BOS when add_bos_token says so, or when the post-processor's template puts it in.
    this.addsBos =
      bos !== undefined &&
      (config.add_bos_token ??
        JSON.stringify(json.post_processor ?? null).includes(
          JSON.stringify(this.tokenizer.id_to_token(bos) ?? '\u0000'),
        ));
  }

  /** tokenizer.json's added tokens are always parsed (`parseSpecial` is not honoured), as transformers does. */
  encode(text: string, options: { addBos?: boolean; parseSpecial?: boolean } = {}): number[] {
    const ids = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    // A chat template that already wrote the BOS text must not get a second one.
    if (options.addBos && this.addsBos && this.bosTokenId !== undefined && ids[0] !== this.bosTokenId)
      ids.unshift(this.bosTokenId);
    return ids;
  }

  decode(ids: readonly number[], options: { keepSpecial?: boolean } = {}): string {
    const kept = options.keepSpecial ? [...ids] : ids.filter((id) => !this.specialIds.has(id));
    if (kept.length === 0) return '';
    return this.tokenizer.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  createStreamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const keepSpecial = options.keepSpecial ?? false;
    return new WindowStreamDecoder((ids) => this.decode(ids, { keepSpecial }), options.prefix);
  }
}
