// Module resolve hook, registered by module-loader.ts. A plugin loaded again for hot reload is
// imported with a `nucleus-gen` query; this passes the same query on to the plugin's relative
// imports, so its whole file tree is loaded afresh while shared packages (the SDK) stay single.

interface ResolveContext {
  parentURL?: string;
}
interface ResolveResult {
  url: string;
  format?: string | null;
  shortCircuit?: boolean;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<ResolveResult>;

const GEN = /[?&]nucleus-gen=(\w+)/;

/** Node's resolve hook. */
export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<ResolveResult> {
  const result = await next(specifier, context);
  const gen = context.parentURL ? GEN.exec(context.parentURL) : null;
  const relative = specifier.startsWith('./') || specifier.startsWith('../');
  if (!gen || !relative || !result.url.startsWith('file:') || GEN.test(result.url)) return result;
  const separator = result.url.includes('?') ? '&' : '?';
  return { ...result, url: `${result.url}${separator}nucleus-gen=${gen[1]}` };
}
