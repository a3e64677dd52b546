/**
 * A part of the runtime that the kernel starts once its plugins are active and stops before they go: the engines.
 * The kernel knows modules only by this shape; whoever composes the runtime hands them over with `Kernel.use`.
 */
export interface KernelModule {
  readonly name: string;
  /** Runs once every plugin is active; a throw stops the kernel's start. */
  start(): Promise<void>;
  /** Runs before plugins deactivate. */
  stop(): Promise<void>;
  /** Configured models that must serve and do not, each with why (see `startup.requireModels`). */
  requiredModelsMissing?(): string[];
}
