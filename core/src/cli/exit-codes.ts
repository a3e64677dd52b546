/** The CLI's exit codes. */
export const ExitCode = {
  ok: 0,
  /** Something failed at run time (a plugin invalid, a server that could not start). */
  failure: 1,
  /**
   * The command line or the config is wrong (a configured model whose source does not exist or no format loads, too).
   */
  usage: 2,
} as const;

/** A mistake on the command line; exits with {@link ExitCode.usage}. */
export class UsageError extends Error {
  override name = 'UsageError';
}
