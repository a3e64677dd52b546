import { homedir } from 'node:os';
import { join } from 'node:path';
import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { HubSource } from './hub-source.js';
import { SourcePolicy } from './source-policy.js';
import { UrlSource } from './url-source.js';

export { downloadBlob, type BlobDownload, type ExpectedBlob } from './blob-download.js';
export { HubSource, type HubSourceOptions } from './hub-source.js';
export { globToRegExp, parseHubUri, type HubUri } from './hub-uri.js';
export { SourcePolicy, type SourcePolicyOptions } from './source-policy.js';
export { UrlSource } from './url-source.js';

/** This plugin's config section (see the `configSchema` in package.json). */
export interface SourceHubConfig {
  endpoint: string;
  token?: string;
  cacheDir?: string;
  offline: boolean;
  allowHosts: string[];
  allowOrgs: string[];
}

/**
 * The Hugging Face cache folder as huggingface_hub finds it: HF_HUB_CACHE, else HF_HOME/hub, else
 * ~/.cache/huggingface/hub.
 */
export function defaultHubCache(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
  return join(home, 'hub');
}

/** Contributes `hf://` (the Hugging Face Hub) and `https://` model sources. */
export default definePlugin<SourceHubConfig>({
  activate(ctx) {
    const config = ctx.config;
    const cacheDir = config.cacheDir ?? defaultHubCache();
    const policy = new SourcePolicy({ allowHosts: config.allowHosts, allowOrgs: config.allowOrgs });
    const endpoint = config.endpoint.replace(/\/+$/, '');
    ctx.contribute(
      ExtensionPoints.modelSource,
      new HubSource({
        endpoint,
        cacheDir,
        offline: config.offline,
        policy,
        ...(config.token && { token: config.token }),
      }),
      { name: 'hf' },
    );
    ctx.contribute(ExtensionPoints.modelSource, new UrlSource(join(cacheDir, 'urls'), policy), { name: 'url' });
  },
});
