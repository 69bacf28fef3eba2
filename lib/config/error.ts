/**
 * ConfigError: the one user-facing line printed as `sidecar-proxy: <message>` before exit 2.
 * Messages name the key, the bad value, where it came from and the allowed values (SPEC §2).
 */

export class ConfigError extends Error {
  constructor(message: string) {
    // One line, whatever a file name or an OS error message carried.
    super(message.replace(/[\r\n\u0085\u2028\u2029]+/g, " "));
    this.name = "ConfigError";
  }
}

/** Raised by value parsers; resolveConfig turns it into a ConfigError with key, value and source. */
export class InvalidValue extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "InvalidValue";
  }
}

const MAX_QUOTED_CHARS = 80;

/** A value as shown in a message: JSON-quoted (control characters escaped), long values cut. */
export function quote(value: string): string {
  const cut = value.length > MAX_QUOTED_CHARS ? `${value.slice(0, MAX_QUOTED_CHARS)}...` : value;
  // JSON.stringify escapes C0 controls; DEL, C1 (U+0085 breaks lines, U+009B starts escape sequences) and the line separators too.
  const q = JSON.stringify(cut).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return value.length > MAX_QUOTED_CHARS ? `${q} (${value.length} characters)` : q;
}
