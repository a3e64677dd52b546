import protobuf from 'protobufjs';

// The few messages of onnx.proto a one-node model needs, with their field numbers from the ONNX spec.
const root = protobuf.Root.fromJSON({
  nested: {
    ModelProto: {
      fields: {
        irVersion: { type: 'int64', id: 1 },
        producerName: { type: 'string', id: 2 },
        graph: { type: 'GraphProto', id: 7 },
        opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
      },
    },
    OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
    GraphProto: {
      fields: {
        node: { rule: 'repeated', type: 'NodeProto', id: 1 },
        name: { type: 'string', id: 2 },
        input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
        output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
      },
    },
    NodeProto: {
      fields: {
        input: { rule: 'repeated', type: 'string', id: 1 },
        output: { rule: 'repeated', type: 'string', id: 2 },
        name: { type: 'string', id: 3 },
        opType: { type: 'string', id: 4 },
      },
    },
    ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
    TypeProto: {
      fields: { tensorType: { type: 'Tensor', id: 1 } },
      nested: {
        Tensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
      },
    },
    TensorShapeProto: {
      fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
      nested: { Dimension: { fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } } } },
    },
  },
});

const FLOAT = 1;

/** A valid ONNX model computing `c = a + b` on float vectors of any length (IR 8, opset 13). */
export function addModel(opType = 'Add'): Uint8Array {
  const ModelProto = root.lookupType('ModelProto');
  const vector = (name: string) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'n' }] } } },
  });
  const model = ModelProto.create({
    irVersion: 8,
    producerName: 'nucleus-tests',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'add',
      node: [{ input: ['a', 'b'], output: ['c'], name: 'add', opType }],
      input: [vector('a'), vector('b')],
      output: [vector('c')],
    },
  });
  return ModelProto.encode(model).finish();
}
