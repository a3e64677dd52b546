import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { NucleusServer } from '@nucleus/core';
import type { Nucleus } from '@nucleus/core';

/** The first-party plugins models come through (formats, built-in models), where installed beside the SDK. */
const MODEL_PLUGINS = [
  '@nucleus/plugin-format-gguf',
  '@nucleus/plugin-format-onnx',
  '@nucleus/plugin-format-safetensors',
  '@nucleus/plugin-format-llama2c',
  '@nucleus/plugin-builtin-models',
];

// Folders of the format plugins that resolve from here; a project without them gets none.
function modelPluginDirs(): string[] {
  const require = createRequire(import.meta.url);
  return MODEL_PLUGINS.flatMap((name) => {
    try {
      return [dirname(require.resolve(`${name}/package.json`))];
    } catch {
      return [];
    }
  });
}

/** How to boot a test kernel. */
export interface TestKernelOptions {
  /** Plugin folders to load; nothing else is discovered unless `builtinPlugins` is set. */
  plugins?: string[];
  /** Also load the plugins shipped in the project's `plugins/` folder. */
  builtinPlugins?: boolean;
  /**
   * Load the first-party plugins models come through (the formats and the built-in models) even without
   * `builtinPlugins`. Default true.
   */
  modelPlugins?: boolean;
  /** Config overrides as dotted path → value, e.g. `{ 'plugin.my-hooks.greeting': 'hi' }`. */
  config?: Record<string, unknown>;
  /** Serve the generated built-in models when no model is configured (default true, as `nucleus serve` does). */
  builtinModels?: boolean;
  /** Environment variables to read `NUCLEUS_*` from; none by default, so the caller's shell cannot leak in. */
  env?: Record<string, string>;
  /** Where log lines go (with `logging.level` set in `config`) instead of stdout. */
  logDestination?: { write(line: string): void };
}

/** A parsed response from {@link TestKernel.request}. */
export interface TestResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when the body is not JSON. */
  body: unknown;
}

/** An in-process kernel with its HTTP server on a free loopback port. */
export interface TestKernel {
  kernel: Nucleus;
  url: string;
  /** Sends a request to the server; a plain object body is sent as JSON. */
  request(
    path: string,
    init?: { method?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<TestResponse>;
  /** Stops the server and deactivates every plugin. */
  stop(): Promise<void>;
}

/** Boots a kernel with chosen plugins on 127.0.0.1 and a free port, quiet and without file watching. */
export async function startTestKernel(options: TestKernelOptions = {}): Promise<TestKernel> {
  const server = await NucleusServer.start({
    env: options.env ?? {},
    builtinModels: options.builtinModels ?? true,
    ...(options.logDestination && { logDestination: options.logDestination }),
    ...(options.builtinPlugins ? {} : { pluginFolders: [], nodeModules: [] }),
    cli: {
      'server.host': '127.0.0.1',
      'server.port': 0,
      'plugins.watch': false,
      'logging.level': 'silent',
      // Tests open models when they use them, and count only the generations they ask for.
      'startup.warmUp': false,
      'plugins.dirs': [
        ...(!options.builtinPlugins && options.modelPlugins !== false ? modelPluginDirs() : []),
        ...(options.plugins ?? []),
      ],
      ...options.config,
    },
  });
  return {
    kernel: server.kernel,
    url: server.url,
    async request(path, init = {}) {
      const hasBody = init.body !== undefined;
      const res = await fetch(new URL(path, server.url), {
        method: init.method ?? (hasBody ? 'POST' : 'GET'),
        headers: {
          ...(hasBody && typeof init.body !== 'string' ? { 'content-type': 'application/json' } : {}),
          ...init.headers,
        },
        ...(hasBody ? { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) } : {}),
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: keep the text.
      }
      return { status: res.status, headers: res.headers, body };
    },
    stop: () => server.stop(),
  };
}
export { eventBus } from './event-bus.js';
export { recordingLogger, type LogLine } from './recording-logger.js';
export { refusalOf } from './refusal.js';
