import { renderConfigReference } from '../kernel/config/index.js';
import { Kernel } from '../kernel/kernel.js';

/** The comments between which README.md holds the generated config reference. */
export const README_MARKERS = ['<!-- config-reference:start -->', '<!-- config-reference:end -->'] as const;

/**
 * The config reference of this checkout (core keys and every discovered plugin's), independent of the caller's
 * environment.
 */
export function configReferenceBlock(): string {
  return renderConfigReference(Kernel.create({ env: {} }).config.schema()).trimEnd();
}
