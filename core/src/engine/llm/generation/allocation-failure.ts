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
