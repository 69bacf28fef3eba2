/**
 * Durations in configuration values: a sequence of `<number><unit>` with units `h`, `m`, `s`,
 * `ms`, as Go's time.ParseDuration writes them (`500ms`, `10s`, `2m`, `1h`, `1m30s`, `1.5s`).
 *
 * Decisions:
 * - A bare number is rejected (is `10` seconds or milliseconds? Nothing is guessed), except `0`,
 *   which means the same in every unit.
 * - Sub-millisecond units (`us`, `ns`) are rejected: the proxy's clocks count milliseconds, and
 *   the result must be a whole number of milliseconds (`1.5s` ok, `0.5ms` not).
 * - No sign, no spaces, no empty text.
 */

const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({ h: 3_600_000, m: 60_000, s: 1_000, ms: 1 });

/** One `<number><unit>` term; `ms` is tried before `m`. */
const TERM = /(\d+)(?:\.(\d+))?(ms|h|m|s)/y;

export class DurationError extends Error {
  /** What is wrong, without the text itself. */
  readonly reason: string;
  constructor(text: string, reason: string) {
    super(`${JSON.stringify(text)} is not a duration: ${reason}`);
    this.name = "DurationError";
    this.reason = reason;
  }
}

/** Parses a duration into whole milliseconds; throws DurationError naming what is wrong. */
export function parseDuration(text: string): number {
  if (text === "0") return 0;
  if (text === "") throw new DurationError(text, "empty");
  if (/^\d+(\.\d+)?$/.test(text)) throw new DurationError(text, "missing unit (ms, s, m or h), e.g. 10s");
  if (text.startsWith("-")) throw new DurationError(text, "negative");
  let totalMs = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < text.length) {
    const at = TERM.lastIndex;
    const m = TERM.exec(text);
    if (m === null) throw new DurationError(text, `unexpected ${JSON.stringify(text.slice(at))}; write e.g. 500ms, 10s, 2m, 1h or 1m30s`);
    const [, whole = "", fraction = "", unit = ""] = m;
    const unitMs = UNIT_MS[unit] ?? 0;
    // Integer and fraction parts are scaled separately so that 1.1s is exactly 1100 ms.
    totalMs += Number(whole) * unitMs + (fraction === "" ? 0 : (Number(fraction) * unitMs) / 10 ** fraction.length);
  }
  if (!Number.isSafeInteger(totalMs)) {
    throw new DurationError(text, Number.isFinite(totalMs) && totalMs < Number.MAX_SAFE_INTEGER ? "not a whole number of milliseconds" : "too large");
  }
  return totalMs;
}

/** The shortest text parseDuration reads back as `ms` (3600000 -> "1h", 90000 -> "1m30s"). */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not a duration in ms: ${ms}`);
  if (ms === 0) return "0";
  let rest = ms;
  let out = "";
  for (const unit of ["h", "m", "s", "ms"] as const) {
    const unitMs = UNIT_MS[unit] ?? 1;
    const n = Math.floor(rest / unitMs);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * unitMs;
  }
  return out;
}
