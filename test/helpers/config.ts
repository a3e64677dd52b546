import { ConfigStore, loadConfig } from '@nucleus/core/kernel/config';

/**
 * The config an engine part reads, as the kernel builds it: `values` (dotted paths) over the schema's defaults,
 * validated; `set` changes a runtime-adjustable key as `PATCH /admin/config` does, telling `onChange` listeners.
 */
export function configOf(
  values: Record<string, unknown> = {},
): ConfigStore & { set(path: string, value: unknown): void } {
  const store = new ConfigStore(loadConfig({ env: {}, cli: values }));
  return Object.assign(store, { set: (path: string, value: unknown) => void store.patch({ [path]: value }, 'test') });
}
