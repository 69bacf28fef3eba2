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
