/**
 * Kubernetes downward-API annotations file (a `metadata.annotations` volume item).
 *
 * The kubelet writes one `key="value"` line per annotation, sorted by key, the value quoted by
 * Go's `%q` (strconv.Quote): `\"`, `\\`, `\a\b\f\n\r\t\v`, `\xNN` for bytes that are not valid
 * UTF-8, `\uNNNN`/`\UNNNNNNNN` for non-printable runes. `\NNN` (octal) is accepted too, as Go's
 * strconv.Unquote does. Blank lines are skipped and a trailing `\r` is ignored (hand-edited
 * files). Anything else is a syntax error: the file is not what we think it is, so nothing in it
 * can be trusted.
 */
import { ConfigError, quote } from "./error.ts";

/** Parses the whole file. Throws ConfigError `line N: ...` (the caller adds the file name). */
export function parseAnnotations(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").replace(/\r$/, "");
    if (line.trim() === "") continue;
    const eq = line.indexOf("=");
    const key = eq > 0 ? line.slice(0, eq) : "";
    if (key === "" || /[\s"]/.test(key)) throw new ConfigError(`line ${i + 1}: expected key="value"`);
    if (out.has(key)) throw new ConfigError(`line ${i + 1}: key ${quote(key)} appears twice`);
    try {
      out.set(key, goUnquote(line.slice(eq + 1)));
    } catch (err) {
      throw new ConfigError(`line ${i + 1}: value of ${quote(key)} ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return out;
}

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = Object.freeze({
  a: 0x07,
  b: 0x08,
  f: 0x0c,
  n: 0x0a,
  r: 0x0d,
  t: 0x09,
  v: 0x0b,
  "\\": 0x5c,
  '"': 0x22,
});

const encoder = new TextEncoder();
// Invalid bytes (from \xNN) become U+FFFD; a leading U+FEFF in a value is kept, not eaten as a BOM.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Go strconv.Unquote for a double-quoted string. `\x` and octal escapes are bytes, not code
 * points (Go strings are bytes), so the result is assembled as UTF-8 bytes and decoded once.
 * Throws an Error whose message completes "value of KEY ...".
 */
export function goUnquote(quoted: string): string {
  if (quoted.length < 2 || !quoted.startsWith('"') || !quoted.endsWith('"')) throw new Error("is not a double-quoted string");
  const body = quoted.slice(1, -1);
  const bytes: number[] = [];
  let i = 0;
  while (i < body.length) {
    const c = body[i] ?? "";
    if (c === '"') throw new Error(`has an unescaped quote at offset ${i + 1}`);
    if (c !== "\\") {
      const cp = body.codePointAt(i) ?? 0;
      const n = cp > 0xffff ? 2 : 1;
      bytes.push(...encoder.encode(body.slice(i, i + n)));
      i += n;
      continue;
    }
    const e = body[i + 1] ?? "";
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      bytes.push(simple);
      i += 2;
    } else if (e === "x") {
      bytes.push(hexAt(body, i + 2, 2));
      i += 4;
    } else if (e === "u" || e === "U") {
      const digits = e === "u" ? 4 : 8;
      const cp = hexAt(body, i + 2, digits);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new Error(`has an invalid code point \\${e}${body.slice(i + 2, i + 2 + digits)}`);
      bytes.push(...encoder.encode(String.fromCodePoint(cp)));
      i += 2 + digits;
    } else if (/^[0-7]{3}$/.test(body.slice(i + 1, i + 4))) {
      const b = parseInt(body.slice(i + 1, i + 4), 8);
      if (b > 0xff) throw new Error(`has an octal escape over \\377`);
      bytes.push(b);
      i += 4;
    } else {
      throw new Error(`has an invalid escape ${JSON.stringify(body.slice(i, i + 2))}`);
    }
  }
  return decoder.decode(new Uint8Array(bytes));
}

function hexAt(s: string, at: number, digits: number): number {
  const hex = s.slice(at, at + digits);
  if (hex.length !== digits || !/^[0-9a-fA-F]+$/.test(hex)) throw new Error(`has an invalid escape ${JSON.stringify(s.slice(at - 2, at + digits))}`);
  return parseInt(hex, 16);
}
