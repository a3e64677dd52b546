import { NucleusError } from '../errors.js';

/** A model file Nucleus cannot run, with every reason at once so the user fixes them in one go. */
export class UnsupportedModelError extends NucleusError {
  /** One line per unsupported feature. */
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    super(400, 'unsupported_model', `${source} is not supported:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'UnsupportedModelError';
    this.problems = problems;
  }
}
