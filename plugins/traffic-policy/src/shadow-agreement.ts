/** How far a shadow's answer agrees with the client's: the share of rows (or tokens) that match, 0 to 1. */
export interface Agreement {
  /** `argmax`: classifier outputs, row by row; `tokens`: generated text, position by position. */
  kind: 'argmax' | 'tokens';
  value: number;
}

type Body = Record<string, unknown>;

/**
 * Compares two answers to the same request, whichever API gave them: classifier outputs (KServe v2 `outputs[]`,
 * native `outputs{}`) by the argmax of each row of the first output; generated text (OpenAI `choices[]`, `/generate`
 * `text_output`) token by token, over whitespace-separated tokens. Undefined when there is nothing to compare.
 */
export function agreement(primary: Body, shadow: Body): Agreement | undefined {
  const a = texts(primary);
  const b = texts(shadow);
  if (a && b) return { kind: 'tokens', value: tokenAgreement(a.join('\n'), b.join('\n')) };
  const x = rows(primary);
  const y = rows(shadow);
  if (!x || !y || x.length === 0) return undefined;
  let equal = 0;
  for (let i = 0; i < x.length; i++) if (y[i] !== undefined && argmax(x[i]!) === argmax(y[i]!)) equal++;
  return { kind: 'argmax', value: equal / Math.max(x.length, y.length) };
}

/** The share of positions holding the same token, over the longer of the two texts (1 for two empty texts). */
export function tokenAgreement(a: string, b: string): number {
  const x = a.split(/\s+/).filter(Boolean);
  const y = b.split(/\s+/).filter(Boolean);
  const n = Math.max(x.length, y.length);
  if (n === 0) return 1;
  let equal = 0;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] === y[i]) equal++;
  return equal / n;
}

function texts(body: Body): string[] | undefined {
  if (typeof body.text_output === 'string') return [body.text_output];
  if (!Array.isArray(body.choices)) return undefined;
  const out = (body.choices as Array<{ text?: unknown; message?: { content?: unknown } }>).map((c) =>
    typeof c.message?.content === 'string' ? c.message.content : typeof c.text === 'string' ? c.text : undefined,
  );
  return out.every((t): t is string => t !== undefined) ? out : undefined;
}

// The first output's rows along its last axis.
function rows(body: Body): number[][] | undefined {
  const outputs = body.outputs;
  if (Array.isArray(outputs)) {
    const first = outputs[0] as { shape?: number[]; data?: unknown } | undefined;
    if (!first || !Array.isArray(first.shape) || !Array.isArray(first.data)) return undefined;
    return split(first.data.flat(Number.POSITIVE_INFINITY) as unknown[], first.shape.at(-1) ?? 1);
  }
  if (outputs && typeof outputs === 'object') {
    const first = Object.values(outputs as Body)[0];
    if (!Array.isArray(first)) return undefined;
    const flat = first.flat(Number.POSITIVE_INFINITY) as unknown[];
    let innermost: unknown[] = first;
    while (Array.isArray(innermost[0])) innermost = innermost[0] as unknown[];
    return split(flat, innermost.length);
  }
  return undefined;
}

function split(values: unknown[], width: number): number[][] | undefined {
  if (width <= 0 || !values.every((v) => typeof v === 'number')) return undefined;
  const out: number[][] = [];
  for (let i = 0; i < values.length; i += width) out.push(values.slice(i, i + width) as number[]);
  return out;
}

function argmax(row: number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
