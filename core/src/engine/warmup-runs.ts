/** How many warm-up runs a model's `warmup` setting asks for: absent or `true` is one, `false` none. */
export function warmupRuns(warmup: boolean | number | undefined): number {
  if (warmup === undefined || warmup === true) return 1;
  if (warmup === false) return 0;
  return warmup;
}
