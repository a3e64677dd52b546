// The protocol's datatype names live in the SDK, shared with the gRPC plugin.
export { kserveDatatype, SUPPORTED_DATATYPES, tensorDataType, type KServeDatatype } from '@nucleus/sdk';
