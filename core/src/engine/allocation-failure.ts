import { NucleusError } from '@nucleus/sdk';

// What onnxruntime says when a run cannot get memory, as it reaches JavaScript inside "Non-zero status code returned
// while running <op> node ... Status Message: ...": the CPU and device arenas (BFCArena) throw "Failed to allocate
// memory for requested buffer of size N" (or "Available memory of N is smaller than requested bytes of M"), a session
// without an arena surfaces the C++ allocator's std::bad_alloc, CUDA says "CUDA failure 2: out of memory" or
// cudaErrorMemoryAllocation, ROCm hipErrorOutOfMemory. A contrib runner grows the KV buffers it keeps in JavaScript,
// where V8 says "Array buffer allocation failed".
const ALLOCATION_FAILURE =
  /Failed to allocate memory|Available memory of \d+ is smaller than requested bytes|bad_alloc|cudaErrorMemoryAllocation|CUDA failure 2: out of memory|CUBLAS_STATUS_ALLOC_FAILED|hipErrorOutOfMemory|out of memory|Array buffer allocation failed/i;

/**
 * Whether an error is a step failing to allocate memory: onnxruntime for a run (CPU arena, CUDA, ROCm or the C++
 * allocator), or V8 for a runner's KV buffers.
 */
export function isAllocationFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  return ALLOCATION_FAILURE.test(message);
}

/**
 * The error of a worker that could not open its model: 507 `insufficient_memory` with what to do about it when the
 * session could not get the memory it needs, else 500 with the worker's code.
 */
export function openFailure(label: string, code: string, message: string): NucleusError {
  if (isAllocationFailure(message)) {
    return new NucleusError(
      507,
      'insufficient_memory',
      `could not open ${label}: not enough memory to load it (${message}); free memory (unload other models, lower cache.prefix.maxBytes) or serve a smaller or quantized model (models[].quantize)`,
    );
  }
  return new NucleusError(500, code, `could not open ${label}: ${message}`);
}
