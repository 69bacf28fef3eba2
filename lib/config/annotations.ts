/**
 * Kubernetes downward-API annotations file (a `metadata.annotations` volume item).
 *
 * The kubelet writes one `key="value"` line per annotation, sorted by key, the value quoted by
 * Go's `%q` (strconv.Quote): `\"`, `\\`, `\a\b\f\n\r\t\v`, `\xNN` for bytes that are not valid
 * UTF-8, `\uNNNN`/`\UNNNNNNNN` for non-printable runes. `\NNN` (octal) is accepted too, as Go's
 * strconv.Unquote does. Blank lines are skipped and a trailing `\r` is ignored (hand-edited
 * files). Anything else is a syntax error: the file is not what we think it is, so nothing in it
 * can be trusted. A key under our prefix that is a near miss of a setting is named in a warning
 * (misspeltAnnotation).
 */
import { ConfigError } from "./error.ts";
import { quote } from "../text.ts";
import { ANNOTATION_PREFIX, OPTIONS } from "./options.ts";

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

const ANNOTATION_KEYS = OPTIONS.flatMap((o) => o.annotations);
/**
 * Edits (a letter added, dropped, changed, or two swapped) within which an unknown key is taken
 * for a misspelt one: 2 took `proxy-protocol-v2` and `proxy-hostport` for typos.
 */
const TYPO_MAX_EDITS = 1;
/** A cut-off key (`proxy-prot`) is taken for a misspelt one from this many characters on. */
const TYPO_MIN_PREFIX = 6;

/**
 * The setting an unknown `sidecar.speedscale.com/*` key is close to (a typo such as
 * `proxy-prot` or `proxy_port`), or null. A typo would otherwise do nothing, silently, as a
 * misspelt SIDECAR_* variable would (config.ts unknownEnv); other unknown keys under the prefix
 * stay silent, since pods carry the Speedscale operator's own (`sidecar.speedscale.com/inject`).
 */
export function misspeltAnnotation(key: string): string | null {
  if (!key.startsWith(ANNOTATION_PREFIX) || ANNOTATION_KEYS.includes(key)) return null;
  const name = typoForm(key.slice(ANNOTATION_PREFIX.length));
  let closest: string | null = null;
  let closestEdits = Infinity;
  for (const known of ANNOTATION_KEYS) {
    const target = typoForm(known.slice(ANNOTATION_PREFIX.length));
    // Only a key cut short: one that goes on past a setting's name (proxy-port-number) is another key.
    const cut = name.length >= TYPO_MIN_PREFIX && target.startsWith(name);
    // A cut-off key is one edit from what it was cut from, however much is missing.
    const edits = cut ? Math.min(1, editDistance(name, target)) : editDistance(name, target);
    if (edits <= TYPO_MAX_EDITS && edits < closestEdits) [closest, closestEdits] = [known, edits];
  }
  return closest;
}

/** Case and `_` / `-` do not tell two keys apart for this purpose (`Proxy_Port`, `proxyport`). */
function typoForm(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, "");
}

/** Edit distance with adjacent swaps (optimal string alignment); the keys are short. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}
