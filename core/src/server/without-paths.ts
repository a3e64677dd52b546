// An absolute file path (POSIX or Windows), with a `:line` or `:line:col` after it as ORT's source paths have, starting
// at the beginning of the text or after a space, quote, bracket, `=` or `:`.
const PATH = /(^|[\s"'`(=[:])(?:[A-Za-z]:[\\/]|\/)[^\s"'`()[\]]*[\\/][^\s"'`()[\]]*?(?=[\s"'`)\],;]|:\s|$)/g;

/**
 * Text for a public answer (`/ready`, a request's error): absolute file paths, such as where a model lives or the ONNX
 * Runtime source file that raised an error, become `<path>`; the server's log keeps the whole text. A path that is
 * `keep` or lies under it (the source the user configured, who knows it already) stays.
 */
export function withoutPaths(text: string, keep?: string): string {
  return text.replace(PATH, (match, before: string) => {
    const path = match.slice(before.length);
    if (keep !== undefined && keep !== '' && (path === keep || path.startsWith(`${keep}/`))) return match;
    return `${before}<path>`;
  });
}
