/**
 * HTTP/1.1 head serialization: RFC 9112 §3 (request-line), §4 (status-line), §5 (field lines).
 * Strings are written one octet per char (ISO-8859-1), the inverse of how http1.ts decodes, so a
 * parsed header is forwarded byte for byte. Pure; re-exported by http1.ts.
 *
 * The writer refuses what would let a value break out of its line (CR, LF, NUL, chars over
 * 0xFF) and names that are not tokens: header values are built by proxy code from parsed input,
 * so such a value is a bug ("internal"), never something to send.
 *
 * Deliberately not written: obs-fold (RFC 9112 §5.2: never generated), and any other encoding
 * of field values than ISO-8859-1 octets.
 */
import { ProxyError } from "../errors.ts";
import type { Header } from "./http1.ts";
import { CR, isToken, LF, SP } from "./http1-scan.ts";

/** Reason phrases, RFC 9110 §15 (and RFC 6585 for 428/429/431). */
export const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  411: "Length Required",
  413: "Content Too Large",
  414: "URI Too Long",
  417: "Expectation Failed",
  421: "Misdirected Request",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
});

export function reasonPhrase(status: number): string {
  return STATUS_TEXT[status] ?? "Unknown";
}

const NUL = 0x00;
const COLON = 0x3a;
const MAX_LATIN1 = 0xff;
const UTF8 = new TextEncoder();

/**
 * `method SP target SP HTTP/version CRLF fields CRLF`. version is "1.0" / "1.1" (as in
 * RequestHead) or a full "HTTP/1.1".
 */
export function serializeRequestHead(method: string, target: string, version: string, headers: readonly Header[]): Uint8Array {
  const v = version.startsWith("HTTP/") ? version : HTTP_VERSION[version] ?? `HTTP/${version}`;
  if (!isToken(method) || !isVisible(target)) throw new ProxyError("internal", "invalid request-line to serialize");
  return writeHead(method, target, v, headers);
}

/**
 * `HTTP/1.1 SP status SP reason CRLF fields CRLF`: we always speak HTTP/1.1 (RFC 9110 §6.2).
 * `body` bytes, if any, follow the head in the same buffer.
 */
export function serializeResponseHead(status: number, reason: string, headers: readonly Header[], body?: Uint8Array): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 599) throw new ProxyError("internal", `invalid status ${status}`);
  return writeHead("HTTP/1.1", String(status), reason, headers, body);
}

/**
 * A complete error response (SPEC §4): Connection: close and a short plain-text body.
 * `reasonText` is the body (UTF-8, newline added); the status line carries the RFC phrase.
 */
export function errorResponse(status: number, reasonText: string, extraHeaders: readonly Header[] = [], toHead = false): Uint8Array {
  const body = UTF8.encode(`${reasonText}\n`);
  const headers: Header[] = [
    { name: "Connection", value: "close" },
    { name: "Content-Type", value: "text/plain; charset=utf-8" },
    // The body may quote what the client sent: a browser must not sniff it into HTML.
    { name: "X-Content-Type-Options", value: "nosniff" },
    { name: "Content-Length", value: String(body.length) },
    ...extraHeaders,
  ];
  // RFC 9110 §9.3.2: no content in an answer to HEAD; its fields are those a GET would get.
  return serializeResponseHead(status, reasonPhrase(status), headers, toHead ? undefined : body);
}

const HTTP_VERSION: Readonly<Record<string, string>> = Object.freeze({ "1.0": "HTTP/1.0", "1.1": "HTTP/1.1" });

// One pass writes and checks each char; measured faster on Bun than building a string and
// encoding it (TextEncoder, regex validation) for typical 300-600 byte heads. The start-line
// comes in its three parts: joined first, it would be a rope string that the first charCodeAt
// has to flatten (a native call and a copy per head, measured in bench/profile.sh).
function writeHead(first: string, second: string, third: string, headers: readonly Header[], tail?: Uint8Array): Uint8Array {
  let size = first.length + second.length + third.length + 6; // 2 SP, start-line CRLF, final CRLF
  for (const h of headers) size += h.name.length + h.value.length + 4; // ": " and CRLF
  const out = new Uint8Array(tail ? size + tail.byteLength : size);
  let p = putText(out, 0, first, false);
  out[p++] = SP;
  p = putText(out, p, second, false);
  out[p++] = SP;
  p = putText(out, p, third, true);
  for (const h of headers) {
    if (!isToken(h.name)) throw new ProxyError("internal", `invalid header name ${JSON.stringify(h.name)}`);
    p = putText(out, p, h.name, false);
    out[p++] = COLON;
    out[p++] = SP;
    p = putText(out, p, h.value, true);
  }
  out[p++] = CR;
  out[p++] = LF;
  if (tail && tail.byteLength > 0) out.set(tail, p);
  return out;
}

/** Writes s one octet per char, then a CRLF when `crlf`; refuses line breaks and non-Latin-1. */
function putText(out: Uint8Array, p: number, s: string, crlf: boolean): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === CR || c === LF || c === NUL || c > MAX_LATIN1) throw new ProxyError("internal", "line break or non-Latin-1 char in head");
    out[p++] = c;
  }
  if (crlf) {
    out[p++] = CR;
    out[p++] = LF;
  }
  return p;
}

function isVisible(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= SP || c >= 0x7f) return false;
  }
  return true;
}
