import protobuf from 'protobufjs';

// The part of onnx.proto (IR version 10) that Nucleus reads and writes, as protobufjs reflection JSON.
// Field numbers are the wire contract; names stay snake_case so they read like the .proto.

type Fields = Record<string, { id: number; type: string; rule?: 'repeated' }>;

const one = (id: number, type: string) => ({ id, type });
const many = (id: number, type: string) => ({ id, type, rule: 'repeated' as const });

const stringStringEntry: Fields = { key: one(1, 'string'), value: one(2, 'string') };

const attribute: Fields = {
  name: one(1, 'string'),
  ref_attr_name: one(21, 'string'),
  doc_string: one(13, 'string'),
  type: one(20, 'int32'),
  f: one(2, 'float'),
  i: one(3, 'int64'),
  s: one(4, 'bytes'),
  t: one(5, 'TensorProto'),
  g: one(6, 'GraphProto'),
  sparse_tensor: one(22, 'SparseTensorProto'),
  tp: one(14, 'TypeProto'),
  floats: many(7, 'float'),
  ints: many(8, 'int64'),
  strings: many(9, 'bytes'),
  tensors: many(10, 'TensorProto'),
  graphs: many(11, 'GraphProto'),
  sparse_tensors: many(23, 'SparseTensorProto'),
  type_protos: many(15, 'TypeProto'),
};

const valueInfo: Fields = {
  name: one(1, 'string'),
  type: one(2, 'TypeProto'),
  doc_string: one(3, 'string'),
  metadata_props: many(4, 'StringStringEntryProto'),
};

const node: Fields = {
  input: many(1, 'string'),
  output: many(2, 'string'),
  name: one(3, 'string'),
  op_type: one(4, 'string'),
  domain: one(7, 'string'),
  overload: one(8, 'string'),
  attribute: many(5, 'AttributeProto'),
  doc_string: one(6, 'string'),
  metadata_props: many(9, 'StringStringEntryProto'),
};

const trainingInfo: Fields = {
  initialization: one(1, 'GraphProto'),
  algorithm: one(2, 'GraphProto'),
  initialization_binding: many(3, 'StringStringEntryProto'),
  update_binding: many(4, 'StringStringEntryProto'),
};

const model: Fields = {
  ir_version: one(1, 'int64'),
  opset_import: many(8, 'OperatorSetIdProto'),
  producer_name: one(2, 'string'),
  producer_version: one(3, 'string'),
  domain: one(4, 'string'),
  model_version: one(5, 'int64'),
  doc_string: one(6, 'string'),
  graph: one(7, 'GraphProto'),
  metadata_props: many(14, 'StringStringEntryProto'),
  training_info: many(20, 'TrainingInfoProto'),
  functions: many(25, 'FunctionProto'),
};

const tensorAnnotation: Fields = {
  tensor_name: one(1, 'string'),
  quant_parameter_tensor_names: many(2, 'StringStringEntryProto'),
};

const graph: Fields = {
  node: many(1, 'NodeProto'),
  name: one(2, 'string'),
  initializer: many(5, 'TensorProto'),
  sparse_initializer: many(15, 'SparseTensorProto'),
  doc_string: one(10, 'string'),
  input: many(11, 'ValueInfoProto'),
  output: many(12, 'ValueInfoProto'),
  value_info: many(13, 'ValueInfoProto'),
  quantization_annotation: many(14, 'TensorAnnotation'),
  metadata_props: many(16, 'StringStringEntryProto'),
};

const tensor: Fields = {
  dims: many(1, 'int64'),
  data_type: one(2, 'int32'),
  segment: one(3, 'Segment'),
  float_data: many(4, 'float'),
  int32_data: many(5, 'int32'),
  string_data: many(6, 'bytes'),
  int64_data: many(7, 'int64'),
  name: one(8, 'string'),
  doc_string: one(12, 'string'),
  raw_data: one(9, 'bytes'),
  external_data: many(13, 'StringStringEntryProto'),
  data_location: one(14, 'int32'),
  double_data: many(10, 'double'),
  uint64_data: many(11, 'uint64'),
  metadata_props: many(16, 'StringStringEntryProto'),
};

const sparseTensor: Fields = {
  values: one(1, 'TensorProto'),
  indices: one(2, 'TensorProto'),
  dims: many(3, 'int64'),
};

const tensorShape: Fields = { dim: many(1, 'Dimension') };
const dimension: Fields = { dim_value: one(1, 'int64'), dim_param: one(2, 'string'), denotation: one(3, 'string') };

const typeProto: Fields = {
  tensor_type: one(1, 'TensorTypeProto'),
  sequence_type: one(4, 'SequenceTypeProto'),
  map_type: one(5, 'MapTypeProto'),
  optional_type: one(9, 'OptionalTypeProto'),
  sparse_tensor_type: one(8, 'SparseTensorTypeProto'),
  opaque_type: one(7, 'OpaqueTypeProto'),
  denotation: one(6, 'string'),
};

const operatorSetId: Fields = { domain: one(1, 'string'), version: one(2, 'int64') };

const functionProto: Fields = {
  name: one(1, 'string'),
  input: many(4, 'string'),
  output: many(5, 'string'),
  attribute: many(6, 'string'),
  attribute_proto: many(11, 'AttributeProto'),
  node: many(7, 'NodeProto'),
  doc_string: one(8, 'string'),
  opset_import: many(9, 'OperatorSetIdProto'),
  domain: one(10, 'string'),
  overload: one(13, 'string'),
  value_info: many(12, 'ValueInfoProto'),
  metadata_props: many(14, 'StringStringEntryProto'),
};

const root = protobuf.Root.fromJSON({
  nested: {
    onnx: {
      nested: {
        StringStringEntryProto: { fields: stringStringEntry },
        AttributeProto: { fields: attribute },
        ValueInfoProto: { fields: valueInfo },
        NodeProto: { fields: node },
        TrainingInfoProto: { fields: trainingInfo },
        ModelProto: { fields: model },
        TensorAnnotation: { fields: tensorAnnotation },
        GraphProto: { fields: graph },
        TensorProto: {
          fields: tensor,
          nested: { Segment: { fields: { begin: one(1, 'int64'), end: one(2, 'int64') } } },
        },
        SparseTensorProto: { fields: sparseTensor },
        TensorShapeProto: {
          fields: tensorShape,
          nested: { Dimension: { fields: dimension, oneofs: { value: { oneof: ['dim_value', 'dim_param'] } } } },
        },
        TypeProto: {
          fields: typeProto,
          oneofs: {
            value: {
              oneof: ['tensor_type', 'sequence_type', 'map_type', 'optional_type', 'sparse_tensor_type', 'opaque_type'],
            },
          },
          nested: {
            TensorTypeProto: { fields: { elem_type: one(1, 'int32'), shape: one(2, 'TensorShapeProto') } },
            SequenceTypeProto: { fields: { elem_type: one(1, 'TypeProto') } },
            MapTypeProto: { fields: { key_type: one(1, 'int32'), value_type: one(2, 'TypeProto') } },
            OptionalTypeProto: { fields: { elem_type: one(1, 'TypeProto') } },
            SparseTensorTypeProto: { fields: { elem_type: one(1, 'int32'), shape: one(2, 'TensorShapeProto') } },
            OpaqueTypeProto: { fields: { domain: one(1, 'string'), name: one(2, 'string') } },
          },
        },
        OperatorSetIdProto: { fields: operatorSetId },
        FunctionProto: { fields: functionProto },
      },
    },
  },
});

/** The protobufjs message type for onnx.ModelProto. */
export const ModelProto = root.lookupType('onnx.ModelProto');

/** `AttributeProto.AttributeType` numbers. */
export const AttributeTypeCode = {
  float: 1,
  int: 2,
  string: 3,
  tensor: 4,
  graph: 5,
  floats: 6,
  ints: 7,
  strings: 8,
  tensors: 9,
  graphs: 10,
  sparseTensor: 11,
  sparseTensors: 12,
  typeProto: 13,
  typeProtos: 14,
} as const;

/** `TensorProto.DataLocation.EXTERNAL`. */
export const DATA_LOCATION_EXTERNAL = 1;
