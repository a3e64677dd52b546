import { cpus } from 'node:os';
import { KERNEL_API_VERSION, type Backend, type Contribution, type ExtensionPointView } from '@nucleus/sdk';

/**
 * ORT's CPU provider with plain defaults, used only when no plugin contributes a `cpu` backend (the backend-cpu
 * plugin disabled, or a test kernel without plugins), so a model always has somewhere to run.
 */
export const DEFAULT_CPU_BACKEND: Backend = Object.freeze({
  name: 'cpu',
  rank: 0,
  probe: async () => ({
    usable: true,
    devices: [{ id: 0, name: cpus()[0]?.model ?? 'cpu', vendor: 'cpu' as const }],
    executionProviders: ['cpu'],
    details: { note: 'built-in defaults: the backend-cpu plugin is not active' },
  }),
  sessionOptions: () => ({
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all' as const,
    // Spinning threads steal time from the event loop and other workers on small machines.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  }),
});

const DEFAULT_CONTRIBUTION: Contribution<Backend> = Object.freeze({
  value: DEFAULT_CPU_BACKEND,
  name: 'cpu',
  priority: -1_000_000,
  pluginId: 'kernel',
  pluginVersion: KERNEL_API_VERSION,
});

/** The `backend` extension point, plus {@link DEFAULT_CPU_BACKEND} whenever no contribution is named `cpu`. */
export function withDefaultCpu(view: ExtensionPointView<Backend>): ExtensionPointView<Backend> {
  const list = (): readonly Contribution<Backend>[] => {
    const contributed = view.list();
    return contributed.some((c) => c.value.name === 'cpu') ? contributed : [...contributed, DEFAULT_CONTRIBUTION];
  };
  return {
    id: view.id,
    list,
    first: () => list()[0],
    find: (name) => list().find((c) => c.name === name),
    use: (contribution, fn) =>
      contribution === DEFAULT_CONTRIBUTION ? Promise.resolve(fn(contribution.value)) : view.use(contribution, fn),
    onChange: (listener) => view.onChange(listener),
  };
}
