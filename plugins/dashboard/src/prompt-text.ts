/** The most of a prompt the dashboard shows (and sends over /ws). */
export const MAX_PROMPT_CHARS = 500;

function textOf(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content
      .map((part) => (typeof part === 'string' ? part : (part as { text?: unknown } | null)?.text))
      .filter((t): t is string => typeof t === 'string')
      .join(' ');
  return undefined;
}

/**
 * The text a request body asks about, as the recent-requests list shows it: a completion's `prompt`, the last user
 * message of a chat, an embedding's `input`; cut to {@link MAX_PROMPT_CHARS}. Undefined for a body with none (a
 * tensor request).
 */
export function promptText(body: unknown): string | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const b = body as { prompt?: unknown; messages?: unknown; input?: unknown; text_input?: unknown };
  let text: string | undefined;
  if (Array.isArray(b.messages)) {
    const users = b.messages.filter((m) => (m as { role?: unknown } | null)?.role === 'user');
    text = textOf((users.at(-1) as { content?: unknown } | undefined)?.content);
  } else text = textOf(b.prompt) ?? textOf(b.input) ?? textOf(b.text_input);
  if (text === undefined || text === '') return undefined;
  return text.length > MAX_PROMPT_CHARS ? `${text.slice(0, MAX_PROMPT_CHARS)}…` : text;
}
