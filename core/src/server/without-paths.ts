// An absolute file path (POSIX or Windows), with a `:line` or `:line:col` after it as ORT's source paths have, starting
// at the beginning of the text or after a space, quote, bracket, `=` or `:`.
const PATH = /(^|[\s"'`(=[:])(?:[A-Za-z]:[\\/]|\/)[^\s"'`()[\]]*[\\/][^\s"'`()[\]]*?(?=[\s"'`)\],;]|:\s|$)/g;

/**
 * Text for a public answer (`/ready`): absolute file paths, such as where a model lives or the ONNX Runtime source file
 * that raised an error, become `<path>`; the server's log keeps the whole text.
 */
export function withoutPaths(text: string): string {
  return text.replace(PATH, (_match, before: string) => `${before}<path>`);
}
