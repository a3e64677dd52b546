import { NucleusError } from '@nucleus/sdk';

/** Which hosts and Hub organisations sources may come from. */
export interface SourcePolicyOptions {
  /** Hosts URLs may name (the Hub endpoint included); empty: any. */
  allowHosts: readonly string[];
  /** Hub organisations (or users) `hf://` sources may name; empty: any. */
  allowOrgs: readonly string[];
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * What may be fetched: `https` anywhere, `http` only to this machine (a test server, a local mirror), and only the
 * hosts and organisations the plugin's config allows.
 */
export class SourcePolicy {
  constructor(private readonly options: SourcePolicyOptions) {}

  /** Throws a 400 when `url` (from `source`) may not be fetched. */
  checkUrl(url: string, source: string): URL {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new NucleusError(400, 'invalid_model_source', `${url} is not a URL (from ${source})`);
    }
    const host = parsed.hostname.toLowerCase();
    if (parsed.protocol === 'http:' && !LOOPBACK.has(host) && !host.startsWith('127.')) {
      throw new NucleusError(
        400,
        'insecure_model_source',
        `${url} is plain http to another machine; models are fetched over https only (http only to 127.0.0.1 or localhost)`,
      );
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new NucleusError(400, 'unsupported_model_source', `${url} is not an https URL (from ${source})`);
    }
    const allowed = this.options.allowHosts;
    if (allowed.length > 0 && !allowed.some((h) => h.toLowerCase() === host || h.toLowerCase() === parsed.host)) {
      throw new NucleusError(
        403,
        'model_source_not_allowed',
        `${source} would be fetched from ${parsed.host}, which plugin.source-hub.allowHosts does not list (${allowed.join(', ')})`,
      );
    }
    return parsed;
  }

  /** Throws a 403 when a Hub organisation is not allowed. */
  checkOrg(org: string, source: string): void {
    const allowed = this.options.allowOrgs;
    if (allowed.length > 0 && !allowed.some((o) => o.toLowerCase() === org.toLowerCase())) {
      throw new NucleusError(
        403,
        'model_source_not_allowed',
        `${source} is in the organisation ${org}, which plugin.source-hub.allowOrgs does not list (${allowed.join(', ')})`,
      );
    }
  }
}
