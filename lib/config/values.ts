/**
 * Value parsers for configuration text. Each takes the text exactly as given (flag, env,
 * annotation or default) and returns the typed value or throws InvalidValue with the reason.
 * Nothing is guessed: no trimming of single values, no case folding, no unit assumed.
 * Comma lists are the one exception: spaces around the commas are ignored ("a, b").
 */
import { MAX_PORT, endsInNumber, isIP, isMappedIPv4 } from "../address.ts";
import { DurationError, parseDuration } from "../duration.ts";
import { parseIPv6 } from "../protocol/socks-address.ts";
import { InvalidValue } from "./error.ts";

export type Parser<T> = (text: string) => T;

export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (text) => {
    if ((values as readonly string[]).includes(text)) return text as T;
    throw new InvalidValue("not one of the allowed values");
  };
}

/** A port to listen on: 0 asks the OS for a free one. */
export function portNumber(text: string): number {
  return integer(0, MAX_PORT)(text);
}

/** A decimal integer in [min, max]; no sign, no spaces, no fraction. */
export function integer(min: number, max: number): Parser<number> {
  return (text) => {
    if (!/^\d+$/.test(text)) throw new InvalidValue("not a whole number");
    const n = Number(text);
    if (n < min || n > max) throw new InvalidValue("out of range");
    return n;
  };
}

/** Whole milliseconds from a duration (lib/duration.ts), in [minMs, maxMs]. */
export function duration(minMs: number, maxMs: number): Parser<number> {
  return (text) => {
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch (err) {
      if (err instanceof DurationError) throw new InvalidValue(err.reason);
      throw err;
    }
    if (ms < minMs || ms > maxMs) throw new InvalidValue("out of range");
    return ms;
  };
}

const BYTE_UNITS: Readonly<Record<string, number>> = Object.freeze({ "": 1, KiB: 1024, MiB: 1024 * 1024 });

/** A byte count: `8192`, `8KiB`, `1MiB` (binary units only: `8K` could mean 8000 or 8192). */
export function bytes(min: number, max: number): Parser<number> {
  return (text) => {
    const m = /^(\d+)(KiB|MiB)?$/.exec(text);
    if (m === null) throw new InvalidValue("not a byte count");
    const n = Number(m[1]) * (BYTE_UNITS[m[2] ?? ""] ?? 1);
    if (n < min || n > max) throw new InvalidValue("out of range");
    return n;
  };
}

/** `true`/`1` or `false`/`0` (env SIDECAR_NO_ADMIN=1; the flag form is just `--no-admin`). */
export function boolean(text: string): boolean {
  if (text === "true" || text === "1") return true;
  if (text === "false" || text === "0") return false;
  throw new InvalidValue("not a boolean");
}

/** Any non-empty text (file paths). */
export function nonEmpty(text: string): string {
  if (text === "") throw new InvalidValue("empty");
  return text;
}

/** A plain IPv4 or IPv6 address: no prefix length, no zone, no brackets. */
export function ipAddress(text: string): string {
  // An IPv4-mapped address cannot be bound: IPv6 listeners are IPv6-only (lib/runtime adapters).
  if (isIP(text) === 6 && isMapped4(text)) throw new InvalidValue("an IPv4-mapped address: write the IPv4 address");
  if (!/[/%]/.test(text) && isIP(text) !== 0) return text;
  throw new InvalidValue(text.startsWith("[") ? "IPv6 addresses are written without brackets" : "not an IP address");
}

function isMapped4(text: string): boolean {
  const b = parseIPv6(text);
  return b !== null && isMappedIPv4(b);
}

/** An IP address or CIDR (`10.0.0.0/8`, `fd00::/8`, a bare IP = /32 or /128); no zone. */
export function cidr(text: string): string {
  // Checked with address.ts isIP rather than ip-address: validating must not load the matcher's
  // library at start-up (lib/policy.ts loads it only when a policy is configured).
  const [address = "", prefix, extra] = text.split("/");
  const family = text.includes("%") || extra !== undefined ? 0 : isIP(address);
  const maxPrefix = family === 4 ? 32 : 128;
  // Prefix lengths in plain decimal: ip-address (the matcher) refuses "/008" for IPv4.
  if (family !== 0 && (prefix === undefined || (/^(?:0|[1-9]\d{0,2})$/.test(prefix) && Number(prefix) <= maxPrefix))) return text;
  throw new InvalidValue("not an IP address or CIDR");
}

/** Comma-separated list of at least one item, each parsed by `item`; duplicates rejected. */
export function list(item: Parser<string>, words: readonly string[] = []): Parser<readonly string[]> {
  return (text) => {
    const items = text.split(",").map((s) => s.trim());
    if (items.some((s) => s === "")) throw new InvalidValue("empty list item");
    for (const s of items) {
      if (words.includes(s)) continue;
      try {
        item(s);
      } catch (err) {
        if (err instanceof InvalidValue && items.length > 1) throw new InvalidValue(`item ${JSON.stringify(s)}: ${err.message}`);
        throw err;
      }
    }
    const dup = items.find((s, i) => items.indexOf(s) !== i);
    if (dup !== undefined) throw new InvalidValue(`${JSON.stringify(dup)} is listed twice`);
    return Object.freeze(items);
  };
}

/** RFC 1123 host name (underscores tolerated, as in some service names) or an IP address. */
export function host(text: string): string {
  if (text === "") throw new InvalidValue("empty");
  if (!/[/%]/.test(text) && isIP(text) !== 0) return text;
  if (text.startsWith("[")) throw new InvalidValue("IPv6 addresses are written without brackets");
  if (/^[^:]+:\d+$/.test(text)) throw new InvalidValue("a host without a port (the port is proxy-port)");
  const label = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
  // A name ending in a number is an IPv4 address in another form (address.ts endsInNumber).
  if (text.length <= 253 && new RegExp(`^${label}(?:\\.${label})*\\.?$`).test(text) && !endsInNumber(text)) return text;
  throw new InvalidValue("not a host name or IP address");
}
