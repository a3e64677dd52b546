import { notFound, type GenerationModelInfo, type GenerationService } from '@nucleus/sdk';

/**
 * Ollama names a model `name:tag`, and a name with no tag means `name:latest`. Nucleus serves models by name, each in
 * one or more versions: `name` and `name:latest` address a model's default version (what the routers pick), and
 * `name:VERSION` one version of it. A Nucleus model whose own name holds a `:` is found by that whole name first.
 */
export interface OllamaAddress {
  model: string;
  version?: string;
}

/** The model (and version) an Ollama model name addresses; 404 `model not found` as Ollama says it. */
export function addressOf(service: GenerationService, name: string): OllamaAddress {
  const all = service.listVersions?.() ?? service.list();
  if (all.some((m) => m.name === name)) return { model: name };
  const at = name.lastIndexOf(':');
  const base = at > 0 ? name.slice(0, at) : name;
  const tag = at > 0 ? name.slice(at + 1) : 'latest';
  const versions = all.filter((m) => m.name === base);
  if (versions.length === 0) throw modelNotFound(name);
  if (tag === 'latest') return { model: base };
  if (!versions.some((m) => (m.version ?? '1') === tag)) throw modelNotFound(name);
  return { model: base, version: tag };
}

/** Ollama's 404 for a model it does not have. */
export function modelNotFound(name: string): Error {
  return notFound('model_not_found', `model "${name}" not found, try pulling it first`);
}

/** The Ollama name of a model: its default version is `name:latest`, another version `name:VERSION`. */
export function ollamaName(info: Pick<GenerationModelInfo, 'name' | 'version'>, isDefault: boolean): string {
  if (info.name.includes(':')) return info.name;
  return `${info.name}:${isDefault ? 'latest' : (info.version ?? '1')}`;
}
