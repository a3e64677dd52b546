import { definePlugin, ExtensionPoints, type PluginContext } from '@nucleus/sdk';
import { actionEntry, AuditTrail, refusalEntry, type AuditDestination } from './audit-trail.js';

export { type AuditDestination, type AuditEntry, AuditTrail, actionEntry, refusalEntry } from './audit-trail.js';

/** The audit-log plugin's config section (`plugin.audit-log`), as its schema in package.json defines it. */
export interface AuditLogConfig {
  file: string | null;
  stdout: boolean;
  maxBytes: number;
  maxFiles: number;
  includeReads: boolean;
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The audit trail: every admin action (plugin enable/disable/reload, config change, model load/swap/unload, traffic
 * policy change, any other admin route) and every refused key (401 or 403), one JSON line each with its time, key
 * name, client address, request id, action, target and outcome. The server reports them at its route edge
 * (`admin.action`, `auth.refused`), so an admin route a plugin adds is audited without the plugin doing anything.
 */
export default definePlugin({
  activate(ctx: PluginContext<AuditLogConfig>) {
    const { file, stdout, maxBytes, maxFiles } = ctx.config;
    const destination: AuditDestination =
      file !== null ? { file, maxBytes, maxFiles } : stdout ? { stdout: true } : { logger: ctx.logger };
    const trail = new AuditTrail(destination, ctx.logger);
    // Read per event, so `includeReads` changed at run time applies to the next request.
    const includeReads = () => (ctx.configValue(`plugin.${ctx.id}.includeReads`) as boolean | undefined) === true;
    const offAction = ctx.events.on('admin.action', (e) => {
      if (READS.has(e.method) && e.outcome === 'ok' && !includeReads()) return;
      trail.record(actionEntry(e));
    });
    const offRefused = ctx.events.on('auth.refused', (e) => trail.record(refusalEntry(e)));
    ctx.contribute(ExtensionPoints.exporter, { name: 'audit-log' });
    ctx.onDispose(async () => {
      offAction();
      offRefused();
      await trail.close();
    });
  },
});
