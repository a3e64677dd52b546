import {
  GENERATE_PARAMETERS,
  GENERATION_VERSION,
  generateParameter,
  samplingParameters,
  type GenerateRequest,
  type GenerationService,
  type GenerationStream,
} from '@nucleus/sdk';
import { invalidArgument } from './grpc-errors.js';
import {
  parameterValue,
  type InferOutputTensor,
  type InferParameter,
  type ModelInferRequest,
  type ModelInferResponse,
} from './messages.js';
import type { RpcCall } from './rpc-gate.js';
import { bytesElements, rawText, shapeOf } from './tensor-contents.js';

/** Request parameters that steer the protocol rather than sampling (Triton's), accepted and not passed on. */
const PROTOCOL_PARAMETERS = new Set([
  'triton_enable_empty_final_response',
  'stream',
  'sequence_id',
  'priority',
  'timeout',
]);

/** The one element of a BYTES or BOOL input of a generation request, from its contents or its raw bytes. */
function scalarInput(request: ModelInferRequest, index: number): string | boolean {
  const input = request.inputs[index]!;
  const shape = shapeOf(input);
  if (shape.reduce((n, d) => n * d, 1) !== 1)
    throw invalidArgument(
      'invalid_shape',
      `input '${input.name}' must hold one element (shape [1]), got [${shape.join(',')}]`,
      input.name,
    );
  const raw = request.raw_input_contents[index];
  if (input.datatype === 'BYTES') {
    const element = raw ? bytesElements(raw, input.name)[0] : input.contents?.bytes_contents?.[0];
    if (element === undefined)
      throw invalidArgument('invalid_tensor_data', `input '${input.name}' has no data`, input.name);
    return Buffer.from(element.buffer, element.byteOffset, element.byteLength).toString('utf8');
  }
  if (input.datatype === 'BOOL') {
    const flag = raw ? raw[0] : input.contents?.bool_contents?.[0];
    if (flag === undefined)
      throw invalidArgument('invalid_tensor_data', `input '${input.name}' has no data`, input.name);
    return flag === true || flag === 1;
  }
  throw invalidArgument(
    'invalid_datatype',
    `input '${input.name}' must be BYTES or BOOL, got ${input.datatype}`,
    input.name,
  );
}

/** What a generation request asks for: the engine request and whether the output starts with the prompt. */
export interface ParsedGeneration {
  request: GenerateRequest;
  includeInput: boolean;
  /** The client wants Triton's empty final response that marks the end of a stream. */
  finalResponse: boolean;
}

/**
 * A ModelInferRequest to a generation model, in the layout Triton's LLM backends take: the prompt as the BYTES input
 * `text_input`, optional `stream`, `exclude_input_in_output` (BOOL) and `sampling_parameters` (BYTES, JSON text), and
 * sampling parameters in the request's `parameters`. 400 naming what is wrong.
 */
export function parseGeneration(
  model: string,
  version: string | undefined,
  request: ModelInferRequest,
): ParsedGeneration {
  if (request.raw_input_contents.length > 0 && request.raw_input_contents.length !== request.inputs.length)
    throw invalidArgument('invalid_tensor_data', 'give one raw_input_contents entry per input, in input order');
  const values: Record<string, unknown> = {};
  let prompt: string | undefined;
  const take = (name: string, value: unknown, field: string) => {
    const known = generateParameter(name, value, field);
    if (!known) {
      if (PROTOCOL_PARAMETERS.has(name)) return;
      throw invalidArgument(
        'unknown_parameter',
        `${field} is not a generation parameter (known: ${Object.keys(GENERATE_PARAMETERS).join(', ')})`,
        field,
      );
    }
    values[known.key] = known.value;
  };
  request.inputs.forEach((input, i) => {
    const value = scalarInput(request, i);
    if (input.name === 'text_input' && typeof value === 'string') prompt = value;
    else if (input.name === 'stream' && typeof value === 'boolean') return;
    else if (input.name === 'exclude_input_in_output' && typeof value === 'boolean') values.excludeInput = value;
    else if (input.name === 'sampling_parameters' && typeof value === 'string') {
      for (const [name, v] of Object.entries(samplingParameters(value))) take(name, v, `sampling_parameters.${name}`);
    } else
      throw invalidArgument(
        'unknown_input',
        `model '${model}' generates text: its inputs are text_input (BYTES), stream, exclude_input_in_output (BOOL) and sampling_parameters (BYTES); got '${input.name}' (${input.datatype})`,
        input.name,
      );
  });
  if (prompt === undefined)
    throw invalidArgument(
      'missing_text_input',
      `model '${model}' needs its prompt in the BYTES input text_input`,
      'text_input',
    );
  const parameters = request.parameters ?? {};
  let finalResponse = false;
  for (const [name, parameter] of Object.entries(parameters as Record<string, InferParameter>)) {
    const value = parameterValue(parameter);
    if (name === 'triton_enable_empty_final_response') finalResponse = value === true;
    take(name, value, `parameters.${name}`);
  }
  const { excludeInput, ...sampling } = values;
  return {
    request: { ...(sampling as Partial<GenerateRequest>), model, ...(version !== undefined && { version }), prompt },
    includeInput: excludeInput === false,
    finalResponse,
  };
}

/** Starts a generation for the call: its tenancy, request id, cancellation and the time left before its deadline. */
export function startGeneration(
  generation: GenerationService,
  parsed: ParsedGeneration,
  call: RpcCall,
  signal: AbortSignal = call.signal,
): Promise<GenerationStream> {
  const left = call.timeLeftMs();
  return generation.generate(
    {
      ...parsed.request,
      ...call.caller.tenancy,
      requestId: call.requestId,
      ...(left !== undefined && { deadlineMs: Math.max(1, left) }),
    },
    signal,
  );
}

/** The text of a one-choice generation as it comes. */
export async function* texts(stream: GenerationStream): AsyncGenerator<string> {
  for await (const event of stream)
    if ((event.type === 'token' || event.type === 'finish') && event.text !== '') yield event.text;
}

/** A response carrying `text` as the BYTES output `text_output`: raw when the request was raw, else typed contents. */
export function textResponse(
  stream: Pick<GenerationStream, 'model' | 'version'>,
  id: string,
  text: string,
  raw: boolean,
): ModelInferResponse {
  const output: InferOutputTensor = { name: 'text_output', datatype: 'BYTES', shape: [1] };
  return {
    model_name: stream.model,
    model_version: stream.version ?? GENERATION_VERSION,
    id,
    outputs: [raw ? output : { ...output, contents: { bytes_contents: [Buffer.from(text, 'utf8')] } }],
    ...(raw && { raw_output_contents: [rawText(text)] }),
  };
}
