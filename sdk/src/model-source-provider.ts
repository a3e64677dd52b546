import type { Logger } from './logger.js';
import type { Progress } from './progress.js';

/** What a {@link ModelSourceProvider} fetches a source with. */
export interface SourceFetchOptions {
  /** Aborts the fetch (a load request that went away, a server stopping); a partial download is kept for resuming. */
  readonly signal?: AbortSignal;
  /** Hex SHA-256 the fetched file must have (`models[].sha256`); a mismatch refuses the file. */
  readonly sha256?: string;
  /** A new {@link Progress} for each file downloaded. */
  readonly progress: () => Progress;
  readonly logger: Logger;
}

/** One model held in a provider's local cache, for `nucleus models ls`. */
export interface CachedModel {
  /** The source that names the whole model, e.g. `hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF`. */
  readonly source: string;
  /** The folder that holds it on disk. */
  readonly path: string;
  /** Bytes on disk (each blob counted once). */
  readonly sizeBytes: number;
  readonly files: number;
  /** Revisions (branch names, tags or commits) it holds. */
  readonly revisions: readonly string[];
  /** When a file of it last changed, ISO 8601. */
  readonly modified: string;
}

/**
 * Turns a model source with a URI scheme (`hf://ORG/REPO/file.gguf`, `https://host/model.onnx`) into a local file or
 * folder that the model formats read. Core asks the provider whose `schemes` hold the source's scheme; local paths
 * never reach a provider. Providers cache what they fetch: a source fetched once loads again without the network.
 */
export interface ModelSourceProvider {
  /** URI schemes handled, lowercase without `:` (`hf`, `https`). */
  readonly schemes: readonly string[];
  /** One line for error messages and listings: what sources it takes. */
  readonly accepts: string;
  /** Fetches `source` (or finds it in the cache) and returns the local path of the file or folder it names. */
  fetch(source: string, options: SourceFetchOptions): Promise<string>;
  /** The models in its cache. */
  cached?(): Promise<CachedModel[]>;
  /** Removes one cached model (named as `cached()` lists it, or as a source naming it); undefined when not cached. */
  remove?(source: string): Promise<CachedModel | undefined>;
}
