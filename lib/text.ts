/**
 * Text from outside (client bytes, file names, OS messages) as logs and messages show it: the
 * characters JSON.stringify leaves raw but a terminal or a line-based reader may act on are
 * escaped. One place, for the log lines (lib/log.ts) and the quoted values of messages.
 */

/**
 * DEL, the C1 controls (U+0085 is a line break to some readers, U+009B starts an escape
 * sequence in xterm) and the Unicode line and paragraph separators; C0 controls are escaped by
 * JSON.stringify already.
 */
const UNSAFE = /[\u007f-\u009f\u2028\u2029]/g;
const UNSAFE_ANY = /[\u007f-\u009f\u2028\u2029]/;

/** `text` with those characters as `\uXXXX` (per log line: no allocation when there are none). */
export function escapeUnsafe(text: string): string {
  return UNSAFE_ANY.test(text) ? text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`) : text;
}

const MAX_QUOTED_CHARS = 80;

/** A value as shown in a message: JSON-quoted (every control escaped), long values cut. */
export function quote(value: string): string {
  const cut = value.length > MAX_QUOTED_CHARS ? `${value.slice(0, MAX_QUOTED_CHARS)}...` : value;
  const q = escapeUnsafe(JSON.stringify(cut));
  return value.length > MAX_QUOTED_CHARS ? `${q} (${value.length} characters)` : q;
}
