import type { OnnxFunction, OnnxGraph, OpsetImports } from './graph-types.js';
import { decodeModelData, encodeModelData, type ModelData } from './model-codec.js';
import type { OnnxTensor } from './tensor.js';

/** What an `OnnxModel` is made from; everything but the graph has a default. */
export interface OnnxModelInit {
  graph: OnnxGraph;
  /** Default `{ '': 17 }`. */
  opsets?: OpsetImports;
  /** Default: the lowest IR version that the default-domain opset needs. */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  metadataProps?: Record<string, string>;
  functions?: OnnxFunction[];
}

/** The opset Nucleus targets when nothing else is said (LayerNormalization is in it; ORT 1.30 runs it). */
export const DEFAULT_OPSET = 17;

// ONNX opset → the IR version that introduced it (onnx/helper.py's VERSION_TABLE).
const irForOpset: [opset: number, ir: number][] = [
  [23, 11],
  [21, 10],
  [19, 9],
  [15, 8],
  [12, 7],
  [11, 6],
  [10, 5],
  [9, 4],
  [7, 3],
  [1, 3],
];

/** The IR version a model importing `opset` of the default domain should declare. */
export function irVersionForOpset(opset: number): number {
  for (const [o, ir] of irForOpset) if (opset >= o) return ir;
  return 3;
}

/** An ONNX model held as plain, editable structures; `encode()` writes the protobuf bytes. */
export class OnnxModel implements ModelData {
  irVersion: number;
  opsets: OpsetImports;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString?: string;
  graph: OnnxGraph;
  metadataProps: Record<string, string>;
  functions: OnnxFunction[];

  constructor(init: OnnxModelInit) {
    this.graph = init.graph;
    this.opsets = { ...(init.opsets ?? { '': DEFAULT_OPSET }) };
    this.irVersion = init.irVersion ?? irVersionForOpset(this.opsets[''] ?? DEFAULT_OPSET);
    this.producerName = init.producerName ?? '';
    this.producerVersion = init.producerVersion ?? '';
    this.domain = init.domain ?? '';
    this.modelVersion = init.modelVersion ?? 0;
    if (init.docString !== undefined) this.docString = init.docString;
    this.metadataProps = { ...(init.metadataProps ?? {}) };
    this.functions = init.functions ?? [];
  }

  /** The ONNX protobuf bytes of this model. Tensors with `external` set are written as references. */
  encode(): Uint8Array {
    return encodeModelData(this);
  }

  /** The initializer called `name`, if there is one. */
  initializer(name: string): OnnxTensor | undefined {
    return this.graph.initializers.find((t) => t.name === name);
  }

  /** Parses ONNX protobuf bytes (same as `decodeModel`). */
  static decode(bytes: Uint8Array): OnnxModel {
    return new OnnxModel(decodeModelData(bytes));
  }
}

/** Parses ONNX protobuf bytes into an editable `OnnxModel`; tensors stored externally keep `external` and empty data (see `loadModel`). */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  return OnnxModel.decode(bytes);
}
