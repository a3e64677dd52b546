export * from './backend.js';
export * from './contributions.js';
export * from './errors.js';
export * from './events.js';
export * from './extension-points.js';
export * from './logger.js';
export * from './plugin.js';
export * from './plugin-state.js';
