import { compileJsonSchema, type JsonNode, type LlmTokenizer } from '@nucleus/sdk/llm';
import { TokenConstraint, TokenVocabulary } from './token-constraint.js';

/**
 * Structured output of one model: a request's JSON schema compiled to the grammar its tokens must follow, and the
 * constraint each of its choices samples under. The vocabulary as text is built on the first request that needs it.
 */
export class StructuredOutput {
  #vocabulary: TokenVocabulary | undefined;

  constructor(private readonly tokenizer: LlmTokenizer) {}

  /** The grammar of a request's `jsonSchema`, undefined without one; throws (a 400) on a schema it cannot follow. */
  compile(jsonSchema: Record<string, unknown> | undefined): JsonNode | undefined {
    return jsonSchema === undefined ? undefined : compileJsonSchema(jsonSchema);
  }

  /**
   * The constraint of one choice: its value follows `grammar`, and the sequence ends when the value is complete;
   * `eos` (the end-of-sequence tokens) are allowed only then.
   */
  constraint(grammar: JsonNode, eos: ReadonlySet<number>): TokenConstraint {
    this.#vocabulary ??= new TokenVocabulary(this.tokenizer);
    return new TokenConstraint(this.#vocabulary, grammar, eos);
  }
}
