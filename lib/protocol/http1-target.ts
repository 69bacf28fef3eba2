/**
 * HTTP/1.1 request-line and request-target: RFC 9112 §3 (request-line), §3.2 (the four target
 * forms), RFC 9110 §4.2.1 (http URI), §4.2.4 (userinfo), §9.3.6 (CONNECT), RFC 3986 §3.2
 * (authority). Pure; used by http1.ts, and by the listeners for its constants and checks.
 *
 * Absolute-form is parsed whatever its scheme, because a reverse listener sends every
 * absolute-form request to the workload (SPEC §3). A forward listener answers 501
 * "commandNotSupported" to any scheme but http (http-message.ts routeRequest): https would need
 * TLS origination (clients reach https origins through CONNECT), other schemes are not HTTP.
 * Only http and https have a default port (RFC 9110 §4.2); for another scheme without a port
 * the port is NO_PORT, and Host carries none.
 *
 * Choices:
 * - Exactly one SP between the three request-line parts (§3: no lenient whitespace parsing).
 * - The target may hold any VCHAR except "#" (fragments are never sent, RFC 9112 §3.2): browsers
 *   send unescaped `|`, `{`, `"`, which are unambiguous; CTLs, SP and obs-text are rejected.
 * - userinfo in an http URI is rejected (RFC 9110 §4.2.4 "treat its presence as an error").
 * - Hosts: reg-name (RFC 3986 unreserved and sub-delims; percent-encoding not supported),
 *   IPv4, or an IPv6 literal in brackets (IPvFuture and zone identifiers not supported). Port
 *   1-65535; an empty port (`host:`) is rejected.
 * - HTTP/1.x with x above 1 is read as HTTP/1.1 (RFC 9110 §2.5: "the highest minor version
 *   within that major version to which the recipient is conformant"); another major version
 *   (the HTTP/2 preface `PRI * HTTP/2.0` too) is 505 on a request (RFC 9110 §15.6.6) and 502
 *   from an upstream; a malformed HTTP-version is 400 / 502.
 * - "*" only with OPTIONS (§3.2.4); authority-form only with CONNECT, and CONNECT only with it.
 */
import { MAX_PORT } from "../address.ts";
import { ProxyError } from "../errors.ts";
import { charClass, DIGIT_1, HTTP_VERSION_LENGTH, INCOMPLETE_REQUEST_LINE, isHttpVersion, parseDigits, SP, TCHAR, VERSION_MAJOR_AT, VERSION_MINOR_AT, versionAt } from "./http1-scan.ts";

export type TargetForm = "origin" | "absolute" | "authority" | "asterisk";
/** HttpUrl.port of a URL whose scheme has no default port and that names none (never valid on the wire). */
const NO_PORT = 0;
const HTTPS_DEFAULT_PORT = 443;

/** A scheme's default port (RFC 9110 §4.2.1, §4.2.2: http 80, https 443), NO_PORT for any other. */
export function defaultPortOf(scheme: string): number {
  return scheme === "http" ? HTTP_DEFAULT_PORT : scheme === "https" ? HTTPS_DEFAULT_PORT : NO_PORT;
}
export interface HttpUrl {
  /** Lower-case. */
  readonly scheme: string;
  readonly host: string;
  /** The URL's port, its scheme's default, or NO_PORT. */
  readonly port: number;
  readonly path: string;
}
export interface Authority {
  readonly host: string;
  readonly port: number;
}
export interface ParsedTarget {
  readonly form: TargetForm;
  readonly url?: HttpUrl;
  readonly authority?: Authority;
}

/** RFC 9110 §4.2.1: the http scheme's default port. */
export const HTTP_DEFAULT_PORT = 80;
const MAX_PORT_DIGITS = 5;
const HASH = 0x23;

/** request-target octets: VCHAR except "#". */
const TARGET_CHAR = charClass((c) => c > SP && c < 0x7f && c !== HASH);
/** RFC 3986 §3.2.2 reg-name without pct-encoded: unreserved / sub-delims. */
const REG_NAME_CHAR = charClass((c) => /[A-Za-z0-9\-._~!$&'()*+,;=]/.test(String.fromCharCode(c)));
const IPV6_CHAR = charClass((c) => /[0-9A-Fa-f:.]/.test(String.fromCharCode(c)));
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]*$/;

export interface RequestLineSpans {
  readonly methodEnd: number;
  readonly targetStart: number;
  readonly targetEnd: number;
  readonly version: "1.0" | "1.1";
}

/** scanRequestLine's answer: one object, filled anew by each call (read it before the next). */
const LINE: { -readonly [K in keyof RequestLineSpans]: RequestLineSpans[K] } = { methodEnd: 0, targetStart: 0, targetEnd: 0, version: "1.1" };

/**
 * RFC 9112 §3: method SP request-target SP HTTP-version, over buf[s, e) (CRLF excluded). The
 * answer is a shared object (no allocation per request): read it before the next call.
 */
export function scanRequestLine(buf: Uint8Array, s: number, e: number): RequestLineSpans {
  let i = s;
  while (i < e && TCHAR[buf[i]!] === 1) i++;
  if (i === e && i > s) throw new ProxyError("protocol", INCOMPLETE_REQUEST_LINE);
  if (i === s || buf[i] !== SP) throw new ProxyError("protocol", "invalid method token");
  const methodEnd = i;
  const targetStart = ++i;
  while (i < e && TARGET_CHAR[buf[i]!] === 1) i++;
  // "GET /" alone is HTTP/0.9, which RFC 9112 §2.3 leaves behind.
  if (i === e && i > targetStart) throw new ProxyError("protocol", INCOMPLETE_REQUEST_LINE);
  if (i === targetStart || buf[i] !== SP) throw new ProxyError("protocol", "invalid request-target");
  const line = LINE;
  line.version = scanVersion(buf, i + 1, e, "protocol");
  line.methodEnd = methodEnd;
  line.targetStart = targetStart;
  line.targetEnd = i;
  return line;
}

/**
 * HTTP-version over buf[s, e) (RFC 9112 §2.3: "HTTP/" DIGIT "." DIGIT): "1.0", or "1.1" for
 * HTTP/1.1 and any higher minor version (RFC 9110 §2.5). A major version other than 1 is
 * `versionNotSupported` (505) on a request, an upstream's `upstreamProtocol` (502).
 */
export function scanVersion(buf: Uint8Array, s: number, e: number, kind: "protocol" | "upstreamProtocol"): "1.0" | "1.1" {
  if (e - s !== HTTP_VERSION_LENGTH || !isHttpVersion(buf, s)) throw new ProxyError(kind, "malformed HTTP-version");
  const major = buf[s + VERSION_MAJOR_AT]!;
  const minor = buf[s + VERSION_MINOR_AT]!;
  if (major !== DIGIT_1) throw new ProxyError(kind === "protocol" ? "versionNotSupported" : kind, `HTTP/${String.fromCharCode(major)}.${String.fromCharCode(minor)} (only HTTP/1.x)`);
  return versionAt(buf, s);
}

const ORIGIN_FORM: ParsedTarget = Object.freeze({ form: "origin" });
const ASTERISK_FORM: ParsedTarget = Object.freeze({ form: "asterisk" });

/** RFC 9112 §3.2: which form the target has, checked against the method. */
export function parseTarget(method: string, target: string): ParsedTarget {
  if (method === "CONNECT") {
    const authority = parseAuthority(target, null);
    if (!authority) throw new ProxyError("protocol", "CONNECT needs authority-form host:port");
    return { form: "authority", authority };
  }
  const first = target.charCodeAt(0);
  if (first === 0x2f /* "/" */) return ORIGIN_FORM;
  if (target === "*") {
    if (method !== "OPTIONS") throw new ProxyError("protocol", "asterisk-form is only for OPTIONS");
    return ASTERISK_FORM;
  }
  const colon = target.indexOf(":");
  const scheme = target.slice(0, colon);
  if (colon > 0 && SCHEME_RE.test(scheme) && target.startsWith("//", colon + 1)) {
    return { form: "absolute", url: parseAbsolute(scheme.toLowerCase(), target, colon + 3) };
  }
  throw new ProxyError("protocol", "invalid request-target (authority-form needs CONNECT)");
}

/** The 501 a forward listener answers to an absolute-form scheme other than http. */
export function schemeNotSupported(scheme: string): ProxyError {
  return new ProxyError("commandNotSupported", `absolute-form with scheme ${scheme} (use CONNECT)`);
}

function parseAbsolute(scheme: string, target: string, authStart: number): HttpUrl {
  let end = authStart;
  while (end < target.length && target[end] !== "/" && target[end] !== "?") end++;
  const auth = target.slice(authStart, end);
  if (auth.includes("@")) throw new ProxyError("protocol", "userinfo in request-target");
  const hp = parseAuthority(auth, defaultPortOf(scheme));
  if (!hp) throw new ProxyError("protocol", "invalid authority in absolute-form");
  const rest = target.slice(end);
  const path = rest === "" ? "/" : rest[0] === "?" ? "/" + rest : rest;
  return { scheme, host: hp.host, port: hp.port, path };
}

/**
 * host [":" port] (RFC 3986 §3.2.2-§3.2.3), brackets removed from IPv6 literals. With
 * defaultPort null the port is required (CONNECT). Returns null when malformed.
 */
export function parseAuthority(s: string, defaultPort: number | null): Authority | null {
  let host: string;
  let portText: string | null = null;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0) return null;
    host = s.slice(1, close);
    if (!isIpv6Literal(host)) return null;
    const after = s.slice(close + 1);
    if (after !== "") {
      if (after[0] !== ":") return null;
      portText = after.slice(1);
    }
  } else {
    const colon = s.lastIndexOf(":");
    host = colon < 0 ? s : s.slice(0, colon);
    if (colon >= 0) portText = s.slice(colon + 1);
    if (host === "" || !allIn(host, REG_NAME_CHAR)) return null;
  }
  if (portText === null) return defaultPort === null ? null : { host, port: defaultPort };
  const port = parseDigits(portText, MAX_PORT_DIGITS);
  return port !== null && port >= 1 && port <= MAX_PORT ? { host, port } : null;
}

function isIpv6Literal(h: string): boolean {
  return h.length >= 2 && allIn(h, IPV6_CHAR) && h.includes(":");
}

function allIn(s: string, table: Uint8Array): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || table[c] !== 1) return false;
  }
  return true;
}

/** RFC 9112 §3.2: Host = uri-host [":" port]; empty is valid (a target without authority). */
export function isValidHostField(value: string): boolean {
  return value === "" || parseAuthority(value, HTTP_DEFAULT_PORT) !== null;
}
