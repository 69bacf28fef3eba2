/**
 * SOCKS address codec, shared by SOCKS4/4a (lib/protocol/socks4.ts) and SOCKS5 (socks5.ts):
 * DST.ADDR / BND.ADDR bytes to text and back (RFC 1928 §5; IPv6 text per RFC 5952), and the
 * host-name bytes a client may send. Pure: no runtime, no DNS.
 *
 * Deliberately not supported: non-ASCII (IDN) host names (clients send A-labels), and IPv6
 * zone identifiers (RFC 1928 has no field for one).
 */

const UTF8 = new TextDecoder();

/**
 * A domain from the wire: host-name letters, digits, '-', '.', '_' and ':' (so an IP literal such
 * as "::1" passes through for the dialer), 1-255 octets. Control bytes, spaces, '/', '@', '%',
 * brackets and non-ASCII are refused (null): they have no place in a name we would resolve.
 */
export function readHostname(b: Uint8Array, start: number, end: number): string | null {
  if (end <= start) return null;
  for (let i = start; i < end; i++) if (!HOST_BYTE[b[i]!]) return null;
  return UTF8.decode(b.subarray(start, end)); // ASCII only, so UTF-8 decoding is exact
}

const HOST_BYTE: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:") t[c.charCodeAt(0)] = 1;
  return t;
})();

export function ipv4Text(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * Dotted quad to 4 bytes; null unless exactly four decimal octets 0-255 of 1-3 ASCII digits each.
 * One pass, no split or regex: it runs for every SOCKS reply's BND.ADDR.
 */
export function parseIPv4(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let octets = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT; // the end closes the last octet
    if (c === DOT) {
      if (digits === 0 || value > 255 || octets === 4) return null;
      out[octets++] = value;
      digits = 0;
      value = 0;
    } else if (c >= DIGIT_0 && c <= DIGIT_9 && digits < 3) {
      value = value * 10 + (c - DIGIT_0);
      digits++;
    } else {
      return null;
    }
  }
  return octets === 4 ? out : null;
}

const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** RFC 5952 text: lower case, no leading zeros, the longest (first) run of 2+ zero groups as "::",
 * and IPv4-mapped addresses in mixed notation (§5), e.g. "::ffff:192.0.2.1". */
export function ipv6Text(b: Uint8Array, at: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${ipv4Text(b, at + 12)}`;
  }
  let best = -1;
  let bestLen = 1; // a single zero group is never compressed (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const text = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(":");
  return best < 0 ? text(0, 8) : `${text(0, best)}::${text(best + bestLen, 8)}`;
}

/** IPv6 text (optionally with a "%zone", IPv4 tail allowed) to 16 bytes; null if malformed. */
export function parseIPv6(text: string): Uint8Array | null {
  const zone = text.indexOf("%");
  const addr = zone < 0 ? text : text.slice(0, zone);
  const halves = addr.split("::");
  if (halves.length > 2) return null;
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((x, i) => {
    out[2 * i] = x >>> 8;
    out[2 * i + 1] = x & 0xff;
  });
  return out;
}

/** Colon-separated hex groups; the last may be a dotted quad (two groups). "" is no groups. */
function groups(s: string): number[] | null {
  if (s === "") return [];
  const parts = s.split(":");
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const v4 = i === parts.length - 1 && parts[i]!.includes(".") ? parseIPv4(parts[i]!) : null;
    if (v4) {
      out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(parts[i]!)) {
      out.push(parseInt(parts[i]!, 16));
    } else {
      return null;
    }
  }
  return out;
}
