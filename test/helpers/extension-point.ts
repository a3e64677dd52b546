import type { Contribution, ExtensionPointView } from '@nucleus/sdk';

/** An extension point as the kernel shows it, holding these contributions (named by `nameOf`, `value.name` by default). */
export function pointOf<T>(
  id: string,
  pluginId: string,
  values: readonly T[],
  nameOf: (value: T) => string = (value) => (value as { name: string }).name,
): ExtensionPointView<T> {
  const list: Contribution<T>[] = values.map((value) => ({
    value,
    name: nameOf(value),
    priority: 0,
    pluginId,
    pluginVersion: '0.1.0',
  }));
  return {
    id,
    list: () => list,
    first: () => list[0],
    find: (name) => list.find((c) => c.name === name),
    use: (c, fn) => Promise.resolve(fn(c.value)),
    onChange: () => () => undefined,
  };
}
