// What onnxruntime says when a run cannot get memory, as it reaches JavaScript inside "Non-zero status code returned
// while running <op> node ... Status Message: ...": the CPU and device arenas (BFCArena) throw "Failed to allocate
// memory for requested buffer of size N" or "Available memory of N is smaller than requested bytes of M", a plain
// allocator failure surfaces as std::bad_alloc, CUDA as "CUDA failure 2: out of memory" or
// cudaErrorMemoryAllocation, ROCm as hipErrorOutOfMemory.
const ALLOCATION_FAILURE =
  /Failed to allocate memory|Available memory of \d+ is smaller than requested bytes|bad_alloc|cudaErrorMemoryAllocation|CUDA failure 2: out of memory|CUBLAS_STATUS_ALLOC_FAILED|hipErrorOutOfMemory|out of memory/i;

/** The message ORT's CPU arena gives when a run's buffer cannot be allocated (what fault injection throws). */
export function ortAllocationFailureMessage(op: string, bytes: number): string {
  return (
    `Non-zero status code returned while running ${op} node. Name:'/${op}' Status Message: ` +
    `onnxruntime/core/framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) ` +
    `Failed to allocate memory for requested buffer of size ${bytes}`
  );
}

/** Whether an error is onnxruntime failing to allocate memory for a run (CPU arena, CUDA, ROCm or the C++ allocator). */
export function isAllocationFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  return ALLOCATION_FAILURE.test(message);
}
