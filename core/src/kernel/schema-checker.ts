import type { Ajv } from 'ajv';

/**
 * Says whether a JSON Schema compiles, with one Ajv for every check. A fresh Ajv per check compiled the
 * meta-schema each time, which was most of a CLI start with a few dozen plugins; a schema's text is
 * checked once per process.
 */
export class SchemaChecker {
  private ajv: Ajv | undefined;
  private readonly verdicts = new Map<string, string | undefined>();

  constructor(private readonly newAjv: () => Ajv) {}

  /** The compile error's message, or undefined when the schema compiles. */
  errorOf(schema: object): string | undefined {
    const text = JSON.stringify(schema);
    if (this.verdicts.has(text)) return this.verdicts.get(text);
    this.ajv ??= this.newAjv();
    let verdict: string | undefined;
    try {
      this.ajv.compile(schema);
    } catch (err) {
      verdict = (err as Error).message;
    } finally {
      // Forgotten again, so one schema's $id or refs cannot change how the next one compiles.
      this.ajv.removeSchema(schema);
    }
    if (this.verdicts.size >= 256) this.verdicts.delete(this.verdicts.keys().next().value!);
    this.verdicts.set(text, verdict);
    return verdict;
  }
}
