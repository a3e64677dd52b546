/** The lifecycle of a plugin, as shown by `nucleus plugins list` and `GET /admin/plugins`. */
export type PluginState = 'discovered' | 'resolved' | 'activating' | 'active' | 'deactivating' | 'inactive' | 'failed';

/** Every plugin state, in lifecycle order. */
export const PLUGIN_STATES: readonly PluginState[] = [
  'discovered',
  'resolved',
  'activating',
  'active',
  'deactivating',
  'inactive',
  'failed',
];
