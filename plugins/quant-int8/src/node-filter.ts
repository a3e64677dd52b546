import type { OnnxNode } from '@nucleus/sdk/onnx';

/**
 * Which nodes a transform may rewrite: `include` (when given) and `exclude` list node names or op types; a node is
 * taken when its op type is one the method handles, it matches `include` (or `include` is empty) and no `exclude`.
 */
export class NodeFilter {
  readonly #include: Set<string>;
  readonly #exclude: Set<string>;

  constructor(
    readonly opTypes: readonly string[],
    include: readonly string[] = [],
    exclude: readonly string[] = [],
  ) {
    this.#include = new Set(include);
    this.#exclude = new Set(exclude);
  }

  /** Undefined when `node` is taken; otherwise why not (undefined reason for op types the method never handles). */
  refuse(node: OnnxNode): { reason?: string } | undefined {
    if (node.domain !== '' && node.domain !== 'ai.onnx') return {};
    if (!this.opTypes.includes(node.opType)) return {};
    if (this.#exclude.has(node.name) || this.#exclude.has(node.opType))
      return { reason: `excluded (${this.#exclude.has(node.name) ? 'by name' : `op type ${node.opType}`})` };
    if (this.#include.size > 0 && !this.#include.has(node.name) && !this.#include.has(node.opType))
      return { reason: 'not in the include list' };
    return undefined;
  }
}
