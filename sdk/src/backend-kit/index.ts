// What a backend plugin needs to inspect a machine honestly: run tools and read /proc and /sys through
// injectable inputs (so detection is testable on recorded fixtures), find onnxruntime-node's native
// files, and check per-model option overrides.
export * from './backend-options.js';
export * from './host-inspection.js';
export * from './ort-install.js';
