import { createHash } from 'node:crypto';
import {
  badRequest,
  NucleusError,
  type ExtensionPointView,
  type Logger,
  type ModelRegistry,
  type ModelSourceProvider,
  type Progress,
  type RouteContribution,
} from '@nucleus/sdk';
import { NdjsonStream } from './ndjson-stream.js';
import { NAMED_SCHEMA, validator } from './ollama-schemas.js';
import type { GenerationService } from '@nucleus/sdk';

interface PullBody {
  model?: string;
  name?: string;
  stream?: boolean;
}

const checkPull = validator<PullBody>(NAMED_SCHEMA);

/** A pull: the Hub source it fetches and the name the model is served under. */
export interface PullTarget {
  source: string;
  name: string;
}

/**
 * What an Ollama model name pulls from the Hugging Face Hub, as Ollama itself pulls Hub models:
 * `hf.co/ORG/REPO` (or `huggingface.co/…`) the whole repository, `hf.co/ORG/REPO:FILE.gguf` that file and
 * `hf.co/ORG/REPO:QUANT` (`Q4_K_M`) the GGUF files whose names hold it; an `hf://` source is taken as it is. The
 * model is served under the name pulled, less a `:latest` tag. Other names (Ollama's own library) are a 400: this
 * server pulls from the Hub only.
 */
export function pullTarget(name: string): PullTarget {
  if (/^hf:\/\//i.test(name)) return { source: name, name };
  const hub = /^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\/([^/:]+\/[^/:]+)(?::([^/]+))?$/i.exec(name);
  if (!hub)
    throw badRequest(
      'invalid_model_name',
      `cannot pull "${name}": this server pulls from the Hugging Face Hub only; name a model as hf.co/ORG/REPO, hf.co/ORG/REPO:QUANT (Q4_K_M), hf.co/ORG/REPO:FILE.gguf or hf://ORG/REPO[/FILE]`,
      'model',
    );
  const [, repo, tag] = hub;
  const served = tag === undefined || tag === 'latest' ? name.replace(/:latest$/, '') : name;
  if (tag === undefined || tag === 'latest') return { source: `hf://${repo}`, name: served };
  if (/\.gguf$/i.test(tag)) return { source: `hf://${repo}/${tag}`, name: served };
  return { source: `hf://${repo}/*${tag}*.gguf`, name: served };
}

/** What the pull route needs: the model registry, the source providers, the engine (to see what is served). */
export interface PullDeps {
  models(): ModelRegistry;
  sources: ExtensionPointView<ModelSourceProvider>;
  generation(): GenerationService;
  logger: Logger;
}

/**
 * `POST /api/pull`: fetches a Hub model through the `hf` model source (source-hub) and loads it, streaming Ollama's
 * progress lines — `pulling manifest`, then per file `pulling <digest>` with `total` and `completed` bytes, then
 * `verifying sha256 digest`, `writing manifest`, `success` — or, with `stream: false`, answering `{status: success}`
 * at the end. A file's `digest` names the download (the Hub's own hash is checked by the source as it downloads). A
 * model already served under that name is not fetched again. Loading models is an admin action, so the route is
 * too.
 */
export function pullRoute(deps: PullDeps): RouteContribution {
  return {
    method: 'POST',
    path: '/api/pull',
    access: 'admin',
    handler: async (ctx) => {
      const body = checkPull((ctx.request as { body?: unknown }).body);
      const target = pullTarget((body.model ?? body.name)!);
      const provider = deps.sources.list().find((c) => c.value.schemes.includes('hf'))?.value;
      if (!provider)
        throw new NucleusError(
          501,
          'pull_unavailable',
          'pulling needs the source-hub plugin (hf:// sources), which this server does not run',
        );
      const known = () =>
        deps
          .generation()
          .list()
          .some((m) => m.name === target.name);
      const controller = new AbortController();
      if (body.stream === false) {
        ctx.res.once('close', () => {
          if (!ctx.res.writableFinished) controller.abort();
        });
        if (!known()) await pull(deps, provider, target, controller.signal, () => undefined);
        return { status: 'success' };
      }
      const out = NdjsonStream.open(ctx);
      out.signal.addEventListener('abort', () => controller.abort(), { once: true });
      // Progress comes in synchronous calls; its lines go out in order, each after the one before.
      let sent: Promise<void> = Promise.resolve();
      const send = (line: Record<string, unknown>) => {
        sent = sent.then(() => out.send(line));
      };
      try {
        send({ status: 'pulling manifest' });
        if (!known()) await pull(deps, provider, target, controller.signal, send);
        send({ status: 'verifying sha256 digest' });
        send({ status: 'writing manifest' });
        send({ status: 'success' });
        await sent;
      } catch (err) {
        await sent;
        await out.error(err);
      } finally {
        out.end();
      }
      return undefined;
    },
  };
}

async function pull(
  deps: PullDeps,
  provider: ModelSourceProvider,
  target: PullTarget,
  signal: AbortSignal,
  send: (line: Record<string, unknown>) => void,
): Promise<void> {
  const progress = (): Progress => {
    let total = 0;
    let completed = 0;
    let reported = -1;
    let digest = '';
    const report = () => {
      if (completed === reported) return;
      reported = completed;
      send({ status: `pulling ${digest.slice(7, 19)}`, digest, total, completed });
    };
    return {
      start(units, label) {
        total = units;
        digest = `sha256:${createHash('sha256').update(`${target.source}\0${label}`).digest('hex')}`;
        report();
      },
      advance(units) {
        completed += units;
        // A line per percent at most: a progress bar needs no more.
        if (total === 0 || completed - reported >= total / 100 || completed >= total) report();
      },
      done() {
        report();
      },
    };
  };
  await provider.fetch(target.source, { signal, progress, logger: deps.logger });
  await deps.models().load({ name: target.name, source: target.source });
}
