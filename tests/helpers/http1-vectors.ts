/**
 * HTTP/1.1 wire vectors shared by tests/http1-vectors.test.ts (fed whole, byte by byte and
 * coalesced) and tests/http-fuzz.test.ts (seeds for mutation). Strings are Latin-1: one char per
 * octet. `status` marks an invalid vector and the HTTP status its ProxyError maps to.
 */
import { expect } from "bun:test";
import type { BodyFraming, HeadLimits, RequestHead, ResponseHead } from "../../lib/protocol/http1.ts";

export interface HeadVector<T> {
  readonly name: string;
  readonly head: string;
  /** Body bytes that follow the head (valid vectors). */
  readonly body?: string;
  readonly limits?: HeadLimits;
  readonly status?: number;
  /** Request method a response answers (responses only; default GET). */
  readonly method?: string;
  readonly check?: (head: T) => void;
}

export interface BodyVector {
  readonly name: string;
  readonly framing: BodyFraming;
  readonly input: string;
  /** Bytes of input that belong to the body; default all of it. */
  readonly used?: number;
  readonly status?: number;
  readonly response?: boolean;
  /** Content of a valid body without its framing (the chunk-data); default the used input. */
  readonly data?: string;
}

export const SMALL: HeadLimits = Object.freeze({ maxRequestLineBytes: 64, maxHeaderBytes: 256, maxHeaderCount: 5 });

export const bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

const H = "Host: example.com\r\n";
const get = (fields: string, version = "1.1"): string => `GET / HTTP/${version}\r\n${fields}\r\n`;
const post = (fields: string): string => `POST /p HTTP/1.1\r\n${H}${fields}\r\n`;
const is = (expected: object) => (h: unknown) => expect(h).toMatchObject(expected);

export const REQUEST_VECTORS: readonly HeadVector<RequestHead>[] = [
  // --- valid ---
  { name: "origin-form GET", head: `GET /a?b=c HTTP/1.1\r\n${H}\r\n`, check: is({ form: "origin", target: "/a?b=c", keepAlive: true, framing: { kind: "none" } }) },
  {
    name: "absolute-form, Host disagreeing is fine (RFC 9112 §3.2.2)",
    head: "GET http://Example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n",
    check: is({ form: "absolute", url: { scheme: "http", host: "Example.com", port: 8080, path: "/x?y" } }),
  },
  { name: "absolute-form without path", head: `GET http://example.com HTTP/1.1\r\n${H}\r\n`, check: is({ url: { scheme: "http", host: "example.com", port: 80, path: "/" } }) },
  { name: "absolute-form with query only", head: `GET HTTP://e.com?q=1 HTTP/1.1\r\n${H}\r\n`, check: is({ url: { scheme: "http", host: "e.com", port: 80, path: "/?q=1" } }) },
  { name: "absolute-form IPv6", head: `GET http://[::1]:8080/ HTTP/1.1\r\n${H}\r\n`, check: is({ url: { scheme: "http", host: "::1", port: 8080, path: "/" } }) },
  // https is parsed (a reverse listener sends it to the workload; a forward one answers 501).
  { name: "https absolute-form: default port 443", head: `GET HTTPS://a/b HTTP/1.1\r\n${H}\r\n`, check: is({ form: "absolute", url: { scheme: "https", host: "a", port: 443, path: "/b" } }) },
  { name: "https absolute-form with a port", head: `GET https://[::1]:80?q HTTP/1.1\r\n${H}\r\n`, check: is({ url: { scheme: "https", host: "::1", port: 80, path: "/?q" } }) },
  // Any other scheme parses too, without a default port (a forward listener answers it 501).
  { name: "ftp absolute-form: no default port", head: `GET FTP://a/f HTTP/1.1\r\n${H}\r\n`, check: is({ form: "absolute", url: { scheme: "ftp", host: "a", port: 0, path: "/f" } }) },
  { name: "ftp absolute-form with a port", head: `GET ftp://a:2121 HTTP/1.1\r\n${H}\r\n`, check: is({ url: { scheme: "ftp", host: "a", port: 2121, path: "/" } }) },
  { name: "CONNECT authority-form", head: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", check: is({ form: "authority", authority: { host: "example.com", port: 443 } }) },
  { name: "CONNECT IPv6", head: "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", check: is({ authority: { host: "2001:db8::1", port: 443 } }) },
  { name: "CONNECT with Content-Length: 0", head: `CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 0\r\n\r\n`, check: is({ form: "authority" }) },
  { name: "OPTIONS *", head: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, check: is({ form: "asterisk" }) },
  { name: "unknown method is forwarded", head: `PURGE /x HTTP/1.1\r\n${H}\r\n`, check: is({ method: "PURGE" }) },
  { name: "Content-Length body", head: post("Content-Length: 5\r\n"), body: "hello", check: is({ framing: { kind: "length", length: 5 } }) },
  { name: "Content-Length: 0", head: post("Content-Length: 0\r\n"), check: is({ framing: { kind: "length", length: 0 } }) },
  { name: "CONNECT port 65535", head: "CONNECT a:65535 HTTP/1.1\r\nHost: a:65535\r\n\r\n", check: is({ authority: { host: "a", port: 65535 } }) },
  { name: "CONNECT port with leading zeros", head: "CONNECT a:00080 HTTP/1.1\r\nHost: a:00080\r\n\r\n", check: is({ authority: { host: "a", port: 80 } }) },
  { name: "Content-Length with leading zeros", head: post("Content-Length: 007\r\n"), body: "1234567" },
  {
    name: "chunked with extensions and trailers",
    head: post("Transfer-Encoding: chunked\r\n"),
    body: '5;name=val;q="a \\"b\\"c"\r\nhello\r\nA ; x\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY:\r\n\r\n',
    check: is({ framing: { kind: "chunked" } }),
  },
  { name: "chunked, zero length", head: post("Transfer-Encoding: Chunked\r\n"), body: "0\r\n\r\n" },
  { name: "HTTP/1.0 without Host closes", head: "GET / HTTP/1.0\r\n\r\n", check: is({ version: "1.0", keepAlive: false }) },
  { name: "HTTP/1.0 keep-alive", head: get("Connection: Keep-Alive\r\n", "1.0"), check: is({ keepAlive: true }) },
  { name: "Connection: close", head: get(`${H}Connection: foo, close\r\n`), check: is({ keepAlive: false }) },
  // Proxy-Connection (non-standard) counts as Connection does on a request, as Squid reads it.
  { name: "HTTP/1.0 Proxy-Connection: Keep-Alive (curl -0 -x)", head: get(`${H}Proxy-Connection: Keep-Alive\r\n`, "1.0"), check: is({ keepAlive: true }) },
  { name: "Proxy-Connection: close", head: get(`${H}Proxy-Connection: close\r\n`), check: is({ keepAlive: false }) },
  { name: "HTTP/1.0 Proxy-Connection: keep-alive, Connection: close", head: get(`${H}Connection: close\r\nProxy-Connection: keep-alive\r\n`, "1.0"), check: is({ keepAlive: false }) },
  { name: "HTTP/1.0 Connection: keep-alive, Proxy-Connection: close", head: get(`${H}Connection: keep-alive\r\nProxy-Connection: close\r\n`, "1.0"), check: is({ keepAlive: false }) },
  { name: "Expect: 100-continue", head: post("Expect: 100-Continue\r\nContent-Length: 1\r\n"), body: "x", check: is({ expectContinue: true }) },
  { name: "Expect ignored in HTTP/1.0 (RFC 9110 §10.1.1)", head: get("Expect: 100-continue\r\n", "1.0"), check: is({ expectContinue: false }) },
  { name: "Upgrade with Connection token", head: get(`${H}Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n`), check: is({ upgrade: "websocket" }) },
  { name: "Upgrade without Connection token", head: get(`${H}Upgrade: websocket\r\n`), check: is({ upgrade: null }) },
  { name: "obs-text inside a value", head: get(`${H}X: a\xe9 b\r\n`), check: (h) => expect(h.headers[1]).toEqual({ name: "X", value: "a\xe9 b" }) },
  { name: "OWS trimmed, empty value kept", head: get(`${H}X:  \tv \t\r\nY:\r\n`), check: (h) => expect(h.headers.slice(1)).toEqual([{ name: "X", value: "v" }, { name: "Y", value: "" }]) },
  { name: "name case and duplicates kept in order", head: get(`hOsT: x\r\nAccept: a\r\naccept: b\r\n`), check: (h) => expect(h.headers.map((f) => f.name)).toEqual(["hOsT", "Accept", "accept"]) },
  { name: "leading empty lines skipped (RFC 9112 §2.2)", head: `\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`, check: is({ target: "/" }) },
  { name: "empty Host on origin-form", head: "GET / HTTP/1.1\r\nHost:\r\n\r\n" },
  { name: "request-line exactly at the limit", head: `GET /${"a".repeat(64 - 14)} HTTP/1.1\r\nHost: x\r\n\r\n`, limits: SMALL },
  { name: "header count exactly at the limit", head: `GET / HTTP/1.1\r\nHost: x\r\n${"A: b\r\n".repeat(4)}\r\n`, limits: SMALL },
  { name: "header bytes exactly at the limit", head: `GET / HTTP/1.1\r\nHost: x\r\nA: ${"b".repeat(256 - 16)}\r\n\r\n`, limits: SMALL },
  // --- framing smuggling vectors (400 unless noted) ---
  { name: "Content-Length with Transfer-Encoding", head: post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), status: 400 },
  { name: "Transfer-Encoding with Content-Length", head: post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), status: 400 },
  { name: "two differing Content-Length", head: post("Content-Length: 5\r\nContent-Length: 6\r\n"), status: 400 },
  { name: "two identical Content-Length", head: post("Content-Length: 5\r\nContent-Length: 5\r\n"), status: 400 },
  { name: "Content-Length list", head: post("Content-Length: 5, 5\r\n"), status: 400 },
  { name: "Content-Length non-digit", head: post("Content-Length: abc\r\n"), status: 400 },
  { name: "Content-Length with sign", head: post("Content-Length: +5\r\n"), status: 400 },
  { name: "Content-Length negative", head: post("Content-Length: -1\r\n"), status: 400 },
  { name: "Content-Length with inner space", head: post("Content-Length: 1 2\r\n"), status: 400 },
  { name: "Content-Length empty", head: post("Content-Length:\r\n"), status: 400 },
  { name: "Content-Length hex", head: post("Content-Length: 0x10\r\n"), status: 400 },
  { name: "Content-Length over 2^53", head: post("Content-Length: 9007199254740993\r\n"), status: 400 },
  { name: "Content-Length 2^53", head: post("Content-Length: 9007199254740992\r\n"), status: 400 },
  { name: "Content-Length 16 digits over 2^53", head: post("Content-Length: 9999999999999999\r\n"), status: 400 },
  { name: "Content-Length 17 digits", head: post("Content-Length: 00000000000000001\r\n"), status: 400 },
  { name: "Transfer-Encoding gzip", head: post("Transfer-Encoding: gzip\r\n"), status: 400 },
  { name: "Transfer-Encoding identity", head: post("Transfer-Encoding: identity\r\n"), status: 400 },
  { name: "Transfer-Encoding chunked, chunked", head: post("Transfer-Encoding: chunked, chunked\r\n"), status: 400 },
  { name: "Transfer-Encoding chunked, gzip", head: post("Transfer-Encoding: chunked, gzip\r\n"), status: 400 },
  { name: "Transfer-Encoding gzip, chunked -> 501", head: post("Transfer-Encoding: gzip, chunked\r\n"), status: 501 },
  { name: "Transfer-Encoding gzip;level=1, chunked -> 501 (a coding with a parameter)", head: post("Transfer-Encoding: gzip;level=1, chunked\r\n"), status: 501 },
  { name: "Transfer-Encoding whose first coding is no token -> 400", head: post("Transfer-Encoding: <script>alert(1)</script>, chunked\r\n"), status: 400 },
  { name: "Transfer-Encoding on two lines", head: post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), status: 400 },
  { name: "Transfer-Encoding with parameter", head: post("Transfer-Encoding: chunked;q=1\r\n"), status: 400 },
  { name: "Transfer-Encoding empty", head: post("Transfer-Encoding:\r\n"), status: 400 },
  { name: "Transfer-Encoding empty list member", head: post("Transfer-Encoding: ,chunked\r\n"), status: 400 },
  { name: "Transfer-Encoding 'chunked ' with obs-text", head: post("Transfer-Encoding: chunked\xff\r\n"), status: 400 },
  // 0xA0 and 0x85 read as latin1 are U+00A0 and U+0085, which String.trim() strips: only SP and HTAB are OWS.
  { name: "Transfer-Encoding chunked + 0xA0", head: post("Transfer-Encoding: chunked\xa0\r\n"), status: 400 },
  { name: "Transfer-Encoding 0xA0 + chunked", head: post("Transfer-Encoding: \xa0chunked\r\n"), status: 400 },
  { name: "Transfer-Encoding gzip + 0x85, chunked", head: post("Transfer-Encoding: gzip\x85, chunked\r\n"), status: 400 },
  { name: "Content-Length list with 0xA0", head: post("Content-Length: 5, 5\xa0\r\n"), status: 400 },
  { name: "HTTP/1.0 with Transfer-Encoding", head: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400 },
  { name: "CONNECT with a body", head: "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 5\r\n\r\n", status: 400 },
  { name: "CONNECT chunked", head: "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400 },
  // --- field syntax ---
  { name: "space before colon", head: get(`${H}Content-Length : 5\r\n`), status: 400 },
  { name: "tab before colon", head: get(`${H}X\t: 5\r\n`), status: 400 },
  { name: "whitespace before the first header", head: `GET / HTTP/1.1\r\n ${H}\r\n`, status: 400 },
  { name: "obs-fold", head: get(`${H}X: a\r\n b\r\n`), status: 400 },
  { name: "obs-fold with tab", head: get(`${H}X: a\r\n\tb\r\n`), status: 400 },
  { name: "bare CR in value", head: get(`${H}X: a\rb\r\n`), status: 400 },
  { name: "bare CR at end of line", head: get(`${H}X: a\r\r\n`), status: 400 },
  { name: "bare LF terminators", head: `GET / HTTP/1.1\n${H.replace("\r", "")}\n`, status: 400 },
  { name: "bare LF in a field line", head: `GET / HTTP/1.1\r\nX: a\nHost: x\r\n\r\n`, status: 400 },
  { name: "bare LF as final line", head: `GET / HTTP/1.1\r\n${H}\n`, status: 400 },
  { name: "NUL in value", head: get(`${H}X: a\x00b\r\n`), status: 400 },
  { name: "DEL in value", head: get(`${H}X: a\x7fb\r\n`), status: 400 },
  { name: "CTL in value", head: get(`${H}X: \x01\r\n`), status: 400 },
  { name: "invalid char in name", head: get(`${H}X@Y: 1\r\n`), status: 400 },
  { name: "parenthesis in name", head: get(`${H}X(Y): 1\r\n`), status: 400 },
  { name: "obs-text in name", head: get(`${H}X\xe9: 1\r\n`), status: 400 },
  { name: "empty name", head: get(`${H}: 1\r\n`), status: 400 },
  { name: "line without colon", head: get(`${H}NoColon\r\n`), status: 400 },
  // RFC 9110 §5.5: field-vchar includes obs-text, first and last octet too (`X-User: José` in
  // UTF-8 ends in 0xA9; nginx and Go take it). Fields that frame or route a request are checked
  // by their own grammar, which has no obs-text: those are refused.
  { name: "obs-text at value start", head: get(`${H}X: \xe9a\r\n`), check: (h) => expect(h.headers[1]).toEqual({ name: "X", value: "\xe9a" }) },
  { name: "obs-text at value end (UTF-8)", head: get(`${H}X-User: Jos\xc3\xa9\r\n`), check: (h) => expect(h.headers[1]).toEqual({ name: "X-User", value: "Jos\xc3\xa9" }) },
  { name: "obs-text after OWS, kept without the OWS", head: get(`${H}X:  \xa0 \r\n`), check: (h) => expect(h.headers[1]).toEqual({ name: "X", value: "\xa0" }) },
  { name: "Content-Length ending in obs-text", head: post("Content-Length: 5\xa0\r\n"), status: 400 },
  { name: "Content-Length starting with obs-text", head: post("Content-Length: \xa05\r\n"), status: 400 },
  { name: "Host ending in obs-text", head: get("Host: a\xa0\r\n"), status: 400 },
  // --- Host ---
  { name: "missing Host on HTTP/1.1", head: "GET / HTTP/1.1\r\n\r\n", status: 400 },
  { name: "two Host", head: get(`${H}host: b\r\n`), status: 400 },
  { name: "two Host on HTTP/1.0", head: get(`${H}${H}`, "1.0"), status: 400 },
  { name: "invalid Host", head: get("Host: exa mple.com\r\n"), status: 400 },
  { name: "Host with path", head: get("Host: a/b\r\n"), status: 400 },
  { name: "Host with bad port", head: get("Host: a:99999\r\n"), status: 400 },
  // --- request-line ---
  { name: "invalid method", head: `G(T / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "NUL in method", head: `GE\x00T / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "space in target", head: `GET /a b HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "CTL in target", head: `GET /a\x01 HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "obs-text in target", head: `GET /\xe9 HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "fragment in target", head: `GET /a#f HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "double space", head: `GET  / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "tab separator", head: `GET\t/ HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "trailing space", head: `GET / HTTP/1.1 \r\n${H}\r\n`, status: 400 },
  // RFC 9110 §2.5: a higher minor version is processed as the highest one we implement.
  { name: "HTTP/1.2 read as HTTP/1.1", head: `GET / HTTP/1.2\r\n${H}\r\n`, check: is({ version: "1.1", keepAlive: true }) },
  { name: "HTTP/1.9 read as HTTP/1.1", head: `GET / HTTP/1.9\r\n${H}\r\n`, check: is({ version: "1.1" }) },
  { name: "HTTP/3.0 -> 505", head: `GET / HTTP/3.0\r\n${H}\r\n`, status: 505 },
  { name: "HTTP/1.10 (two minor digits)", head: `GET / HTTP/1.10\r\n${H}\r\n`, status: 400 },
  { name: "HTTP/1 (no minor)", head: `GET / HTTP/1\r\n${H}\r\n`, status: 400 },
  { name: "lower-case http/1.1", head: `GET / http/1.1\r\n${H}\r\n`, status: 400 },
  { name: "HTTP/2 preface -> 505", head: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 505 },
  { name: "HTTP/0.9", head: "GET /\r\n\r\n", status: 400 },
  { name: "CONNECT origin-form", head: `CONNECT / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "CONNECT without port", head: `CONNECT example.com HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "CONNECT absolute-form", head: `CONNECT http://a:1/ HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "CONNECT port 0", head: `CONNECT a:0 HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "CONNECT port 65536", head: `CONNECT a:65536 HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "CONNECT port of 6 digits", head: `CONNECT a:000080 HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "authority-form with GET", head: `GET example.com:80 HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "asterisk-form with GET", head: `GET * HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "userinfo in https absolute-form", head: `GET https://u@a/ HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "userinfo in absolute-form", head: `GET http://u:p@a/ HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "absolute-form empty host", head: `GET http:///x HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "absolute-form bad port", head: `GET http://a:8x/ HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "relative target", head: `GET a/b HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "TLS ClientHello on the HTTP port", head: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", status: 400 },
  { name: "too many leading empty lines", head: `${"\r\n".repeat(5)}GET / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "leading bare LF", head: `\nGET / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  // --- limits (small limits: request-line 64, header section 256 bytes, 5 fields) ---
  { name: "request-line over limit, incomplete -> 414 at once", head: `GET /${"a".repeat(100)}`, limits: SMALL, status: 414 },
  { name: "request-line over limit -> 414", head: `GET /${"a".repeat(64 - 13)} HTTP/1.1\r\nHost: x\r\n\r\n`, limits: SMALL, status: 414 },
  { name: "header section over limit, incomplete -> 431 at once", head: `GET / HTTP/1.1\r\nX: ${"a".repeat(300)}`, limits: SMALL, status: 431 },
  { name: "header section over limit -> 431", head: `GET / HTTP/1.1\r\nHost: x\r\nA: ${"b".repeat(256 - 15)}\r\n\r\n`, limits: SMALL, status: 431 },
  { name: "bare LF past the header limit -> 431 however split", head: `GET / HTTP/1.1\r\nX: ${"a".repeat(300)}\nHost: x\r\n\r\n`, limits: SMALL, status: 431 },
  { name: "bare LF past the line limit -> 414 however split", head: `GET /${"a".repeat(100)}\n`, limits: SMALL, status: 414 },
  { name: "too many fields -> 431", head: `GET / HTTP/1.1\r\nHost: x\r\n${"A: b\r\n".repeat(5)}\r\n`, limits: SMALL, status: 431 },
];

const ok = (fields: string, status = "200 OK", version = "1.1"): string => `HTTP/${version} ${status}\r\n${fields}\r\n`;

export const RESPONSE_VECTORS: readonly HeadVector<ResponseHead>[] = [
  { name: "Content-Length", head: ok("Content-Length: 5\r\n"), body: "hello", check: is({ status: 200, reason: "OK", keepAlive: true }) },
  { name: "chunked with trailers", head: ok("Transfer-Encoding: chunked\r\n"), body: "3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n" },
  { name: "HEAD: no body despite Content-Length", head: ok("Content-Length: 100\r\n"), method: "HEAD" },
  { name: "100 Continue: no body", head: "HTTP/1.1 100 Continue\r\n\r\n", check: is({ status: 100 }) },
  { name: "204: no body", head: ok("", "204 No Content") },
  { name: "304: no body despite Content-Length", head: ok("Content-Length: 10\r\n", "304 Not Modified") },
  { name: "101 Switching Protocols", head: ok("Connection: Upgrade\r\nUpgrade: websocket\r\n", "101 Switching Protocols") },
  { name: "CONNECT 200: tunnel", head: ok("", "200 Connection established"), method: "CONNECT" },
  { name: "read until close", head: ok(""), body: "all of this", check: is({ headerFraming: { kind: "close" } }) },
  { name: "HTTP/1.0 read until close", head: ok("", "200 OK", "1.0"), body: "x", check: is({ version: "1.0", keepAlive: false }) },
  {
    name: "TE and CL: TE wins, CL removed (RFC 9112 §6.3)",
    head: ok("Content-Length: 99\r\nTransfer-Encoding: chunked\r\n"),
    body: "0\r\n\r\n",
    check: (h) => expect(h.headers).toEqual([{ name: "Transfer-Encoding", value: "chunked" }]),
  },
  {
    name: "identical Content-Length merged",
    head: ok("Content-Length: 2\r\nX: y\r\ncontent-length: 2, 2\r\n"),
    body: "ab",
    check: (h) => expect(h.headers).toEqual([{ name: "Content-Length", value: "2" }, { name: "X", value: "y" }]),
  },
  { name: "status-line without reason", head: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", check: is({ reason: "" }) },
  { name: "status-line with empty reason", head: "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", check: is({ status: 404, reason: "" }) },
  { name: "reason with obs-text", head: "HTTP/1.1 200 D\xe9j\xe0 vu\r\nContent-Length: 0\r\n\r\n", check: is({ reason: "D\xe9j\xe0 vu" }) },
  {
    name: "obs-text at a value's start and end (UTF-8 José): kept, unlike a request's",
    head: ok("X-User: Jos\xc3\xa9\r\nX-B: \xe9a\r\nContent-Length: 0\r\n"),
    check: (h) => expect(h.headers.slice(0, 2)).toEqual([{ name: "X-User", value: "Jos\xc3\xa9" }, { name: "X-B", value: "\xe9a" }]),
  },
  { name: "Connection: close", head: ok("Connection: close\r\nContent-Length: 0\r\n"), check: is({ keepAlive: false }) },
  { name: "differing Content-Length", head: ok("Content-Length: 2\r\nContent-Length: 3\r\n"), status: 502 },
  { name: "invalid Content-Length", head: ok("Content-Length: 2a\r\n"), status: 502 },
  { name: "chunked, chunked", head: ok("Transfer-Encoding: chunked, chunked\r\n"), status: 502 },
  { name: "chunked not last", head: ok("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), status: 502 },
  { name: "Transfer-Encoding in HTTP/1.0", head: ok("Transfer-Encoding: chunked\r\n", "200 OK", "1.0"), status: 502 },
  { name: "four-digit status", head: "HTTP/1.1 2000 OK\r\n\r\n", status: 502 },
  { name: "two-digit status", head: "HTTP/1.1 20 OK\r\n\r\n", status: 502 },
  { name: "status 600", head: "HTTP/1.1 600 X\r\n\r\n", status: 502 },
  { name: "status 099", head: "HTTP/1.1 099 X\r\n\r\n", status: 502 },
  { name: "HTTP/2 status-line", head: "HTTP/2 200 OK\r\n\r\n", status: 502 },
  { name: "Transfer-Encoding chunked + 0xA0 in a response", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\xa0\r\n\r\n", status: 502 },
  { name: "Content-Length list with 0xA0 in a response", head: "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\xa0\r\n\r\n", status: 502 },
  { name: "HTTP/2.0 status-line", head: "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", status: 502 },
  { name: "HTTP/1.2 status-line read as HTTP/1.1", head: "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", check: is({ version: "1.1", keepAlive: true }) },
  { name: "not HTTP (ICY)", head: "ICY 200 OK\r\n\r\n", status: 502 },
  { name: "empty status-line", head: "\r\nHTTP/1.1 200 OK\r\n\r\n", status: 502 },
  { name: "bare LF", head: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", status: 502 },
  { name: "obs-fold", head: ok("X: a\r\n b\r\n"), status: 502 },
  { name: "CTL in reason", head: "HTTP/1.1 200 O\x01K\r\n\r\n", status: 502 },
  { name: "header section over limit", head: ok(`X: ${"a".repeat(300)}\r\n`), limits: SMALL, status: 502 },
];

const chunked: BodyFraming = { kind: "chunked" };
const ALL_OCTETS = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");

export const BODY_VECTORS: readonly BodyVector[] = [
  { name: "length 5", framing: { kind: "length", length: 5 }, input: "hello" },
  { name: "length 0 is done at once", framing: { kind: "length", length: 0 }, input: "" },
  { name: "none", framing: { kind: "none" }, input: "" },
  { name: "one chunk", framing: chunked, input: "5\r\nhello\r\n0\r\n\r\n", data: "hello" },
  { name: "upper-case hex and leading zeros", framing: chunked, input: "000A\r\n0123456789\r\n00\r\n\r\n", data: "0123456789" },
  { name: "chunk data containing CRLF", framing: chunked, input: "4\r\n\r\n\r\n\r\n0\r\n\r\n", data: "\r\n\r\n" },
  { name: "extensions with BWS and quoted-string", framing: chunked, input: '1 \t; a = b ;c="x\\"y;\\\\" ;d\r\nz\r\n0;last\r\n\r\n', data: "z" },
  { name: "trailers", framing: chunked, input: "1\r\na\r\n0\r\nExpires: never\r\nX-Empty:\r\n\r\n", data: "a" },
  { name: "zero-length chunked body", framing: chunked, input: "0\r\n\r\n", data: "" },
  { name: "15 hex digits of size are fine", framing: chunked, input: "000000000000001\r\na\r\n0\r\n\r\n", data: "a" },
  {
    name: "several chunks, data that looks like framing, extensions and a trailer",
    framing: chunked,
    input: '3;a=1\r\n0\r\n\r\n2\r\n;x\r\n11;q="1;2" \r\nHTTP/1.1 200 OK\r\n\r\n0;z\r\nX-Sum: 9\r\n\r\n',
    data: "0\r\n;xHTTP/1.1 200 OK\r\n",
  },
  { name: "chunk-data of every octet value", framing: chunked, input: `100\r\n${ALL_OCTETS}\r\n0\r\n\r\n`, data: ALL_OCTETS },
  { name: "invalid hex size", framing: chunked, input: "g\r\n", status: 400 },
  { name: "empty size", framing: chunked, input: "\r\n", status: 400 },
  { name: "negative size", framing: chunked, input: "-5\r\nhello\r\n", status: 400 },
  { name: "0x prefix", framing: chunked, input: "0x5\r\nhello\r\n", status: 400 },
  { name: "size overflow over 2^53", framing: chunked, input: "20000000000000\r\n", status: 400 },
  { name: "too many size digits", framing: chunked, input: "00000000000000001\r\n", status: 400 },
  { name: "whitespace after size without ext", framing: chunked, input: "5 \r\nhello\r\n0\r\n\r\n", status: 400 },
  { name: "bare LF after size", framing: chunked, input: "5\nhello\r\n0\r\n\r\n", status: 400 },
  { name: "missing CRLF after data", framing: chunked, input: "5\r\nhelloX\r\n0\r\n\r\n", status: 400 },
  { name: "bare LF after data", framing: chunked, input: "5\r\nhello\n0\r\n\r\n", status: 400 },
  { name: "bare CR in extension", framing: chunked, input: "5;a\rb\r\nhello\r\n", status: 400 },
  { name: "bare LF in extension", framing: chunked, input: "5;a\nhello\r\n0\r\n\r\n", status: 400 },
  { name: "NUL in extension", framing: chunked, input: "5;a=\x00\r\nhello\r\n", status: 400 },
  { name: "CR inside quoted extension", framing: chunked, input: '5;a="\r\n"\r\nhello\r\n', status: 400 },
  { name: "extension over the limit", framing: chunked, input: `1;${"a".repeat(5000)}\r\n`, status: 400 },
  { name: "trailer obs-fold", framing: chunked, input: "0\r\nA: b\r\n c\r\n\r\n", status: 400 },
  { name: "trailer bare LF", framing: chunked, input: "0\r\nA: b\n\r\n", status: 400 },
  { name: "trailer without colon", framing: chunked, input: "0\r\nAb\r\n\r\n", status: 400 },
  { name: "final bare LF", framing: chunked, input: "0\r\n\n", status: 400 },
  { name: "response body errors are 502", framing: chunked, input: "z\r\n", status: 502, response: true },
];
