/**
 * Address text shared by logs, headers and runtime adapters: a dual-stack socket reports an IPv4
 * peer as `::ffff:a.b.c.d`, shown everywhere as the IPv4 address it is; `host:port` puts IPv6
 * hosts in brackets (RFC 3986 §3.2.2).
 */
import { parseIPv6 } from "./protocol/socks-address.ts";

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const COLON = 0x3a;

/** `::ffff:a.b.c.d` -> `a.b.c.d`; anything else unchanged. Called per connection: no regex unless it may match. */
export function unmapIPv4(address: string): string {
  if (address.length < 14 || address.charCodeAt(0) !== COLON) return address;
  const m = MAPPED_V4.exec(address);
  return m ? m[1]! : address;
}

/** `host:port`, `[v6]:port`. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

// The IP-literal test of Node's `net.isIP`, without importing `node:net`: under a compiled Bun
// binary that import loads Bun's whole node:net module at start-up (~10 ms of a ~50 ms start on
// a slow machine: bench/RESULTS.md). tests/address.test.ts holds this to node:net's answers.
const V4_SEG = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
const V4 = `(?:${V4_SEG}\\.){3}${V4_SEG}`;
const V6_SEG = "(?:[0-9a-fA-F]{1,4})";
const IPV4_RE = new RegExp(`^${V4}$`);
const IPV6_RE = new RegExp(
  "^(?:" +
    `(?:${V6_SEG}:){7}(?:${V6_SEG}|:)|` +
    `(?:${V6_SEG}:){6}(?:${V4}|:${V6_SEG}|:)|` +
    `(?:${V6_SEG}:){5}(?::${V4}|(?::${V6_SEG}){1,2}|:)|` +
    `(?:${V6_SEG}:){4}(?:(?::${V6_SEG}){0,1}:${V4}|(?::${V6_SEG}){1,3}|:)|` +
    `(?:${V6_SEG}:){3}(?:(?::${V6_SEG}){0,2}:${V4}|(?::${V6_SEG}){1,4}|:)|` +
    `(?:${V6_SEG}:){2}(?:(?::${V6_SEG}){0,3}:${V4}|(?::${V6_SEG}){1,5}|:)|` +
    `(?:${V6_SEG}:){1}(?:(?::${V6_SEG}){0,4}:${V4}|(?::${V6_SEG}){1,6}|:)|` +
    `(?::(?:(?::${V6_SEG}){0,5}:${V4}|(?::${V6_SEG}){1,7}|:))` +
    ")(?:%[0-9a-zA-Z-.:]{1,})?$",
);

/**
 * Whether a name that is not an IP literal ends in a number: its last label (after one trailing
 * dot) is all decimal digits, or 0x/0X and hex digits. inet_aton and the WHATWG URL parser read
 * such a name as an IPv4 address in another form ("0177.0.0.1" octal, "0x7f.1", "2130706433",
 * "1.2.3", "010.0.0.1", which Node's isIP refuses for its leading zero), and other resolvers
 * send it to DNS, where any answer may come back. It is no DNS name either (RFC 3696 §2: a
 * top-level label is not all-numeric), so the proxy refuses it rather than guess which.
 */
export function endsInNumber(host: string): boolean {
  const end = host.endsWith(".") ? host.length - 1 : host.length;
  const start = host.lastIndexOf(".", end - 1) + 1;
  if (start >= end) return false;
  const label = host.slice(start, end);
  return /^[0-9]+$/.test(label) || /^0[xX][0-9a-fA-F]*$/.test(label);
}

/** 4 for an IPv4 literal, 6 for IPv6 (a zone `%id` allowed), 0 otherwise: Node's `net.isIP`. */
export function isIP(text: string): number {
  if (IPV4_RE.test(text)) return 4;
  if (IPV6_RE.test(text)) return 6;
  return 0;
}

/** The highest TCP port number. */
export const MAX_PORT = 65535;

/** The 16 bytes of an IPv6 address are an IPv4-mapped one (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2). */
export function isMappedIPv4(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * The address a connect to `address` (an IP literal) reaches: Linux sends a connect to the
 * unspecified address to the loopback one (0.0.0.0 and ::ffff:0.0.0.0 to 127.0.0.1, :: to ::1),
 * so the dialler connects to, and --deny-destinations judges, that address; anything else is
 * returned as given. Without it `0.0.0.0` reached a workload on 127.0.0.1 past a deny list that
 * named 127.0.0.0/8 (Dante refuses 0.0.0.0; browsers block it since 2024's "0.0.0.0 day").
 */
export function dialledAddress(address: string): string {
  if (address === "0.0.0.0") return "127.0.0.1";
  if (!address.includes(":")) return address;
  const zone = address.indexOf("%");
  // Only the unspecified address and ::ffff:0.0.0.0 are spelled without 1-9 and a-e.
  if (/[1-9a-e]/i.test(zone < 0 ? address : address.slice(0, zone))) return address;
  const bytes = parseIPv6(address);
  if (bytes === null) return address;
  if (isMappedIPv4(bytes)) return bytes[12]! | bytes[13]! | bytes[14]! | bytes[15]! ? address : "127.0.0.1";
  for (let i = 0; i < 16; i++) if (bytes[i] !== 0) return address;
  return "::1";
}
