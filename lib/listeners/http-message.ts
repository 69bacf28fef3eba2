/**
 * What the HTTP driver sends where: the upstream request head built from a client request
 * (forward: absolute-form -> origin-form; reverse: everything to the workload with
 * X-Forwarded-*), the client response head built from an upstream response, proxy
 * authentication, and error responses. Pure functions; the session in http.ts does the I/O.
 */
import type { Verifier } from "../auth.ts";
import { ERROR_TABLE, ProxyError } from "../errors.ts";
import { getHeader, setHeader, stripHopByHop, VIA_PSEUDONYM, withForwarded, withVia } from "../http/hop.ts";
import { type Header, type RequestHead, type ResponseHead, errorResponse, fieldNameIs, serializeRequestHead, serializeResponseHead } from "../protocol/http1.ts";
import { CR, LF, trimOws } from "../protocol/http1-scan.ts";
import { HTTP_DEFAULT_PORT, type HttpUrl, defaultPortOf, schemeNotSupported } from "../protocol/http1-target.ts";
import type { DialTarget } from "../dial.ts";
import { PlainResponse } from "./http-plain-response.ts";

export interface Routed {
  readonly target: DialTarget;
  /** The serialized head for the upstream. */
  readonly head: Uint8Array;
}

export interface RouteInput {
  readonly request: RequestHead;
  /** Reverse listeners: the workload; forward: null (the request names the origin). */
  readonly workload: DialTarget | null;
  readonly clientIp: string;
}

/** Decides where a non-CONNECT request goes and what is sent there. Throws ProxyError. */
export function routeRequest({ request, workload, clientIp }: RouteInput): Routed {
  const stripped = stripHopByHop(request.headers, { keepUpgrade: request.upgrade !== null });
  const route = workload === null ? forwardRoute(request, stripped) : reverseRoute(request, stripped, workload, clientIp);
  let headers = route.headers;
  // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is to be ignored; it
  // goes upstream as HTTP/1.1, where it would ask the origin for a 100 nobody waits for.
  if (request.version === "1.0" && getHeader(headers, "expect") !== undefined) {
    headers = headers.filter((h) => !(fieldNameIs(h.name, "expect") && trimOws(h.value).toLowerCase() === "100-continue"));
  }
  // RFC 9110 §7.6.2: a TRACE or OPTIONS goes on with Max-Forwards one less (0 never gets here:
  // lastHopAnswer answers it).
  const hops = maxForwardsOf(request);
  if (hops !== null && hops > 0) headers = setHeader(headers, "Max-Forwards", String(hops - 1));
  headers = withVia(headers, request.version, VIA_PSEUDONYM);
  // We speak HTTP/1.1 upstream whatever the client spoke (RFC 9110 §6.2).
  return { target: route.target, head: serializeRequestHead(request.method, route.path, "1.1", headers) };
}

interface Route {
  readonly target: DialTarget;
  readonly path: string;
  readonly headers: readonly Header[];
}

/** Forward proxy: only absolute-form names an origin (RFC 9112 §3.2.2). */
function forwardRoute(request: RequestHead, headers: readonly Header[]): Route {
  if (request.form !== "absolute" || !request.url) {
    throw new ProxyError("protocol", "this is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT");
  }
  // Anything but http: https would need TLS from us (clients tunnel to it with CONNECT instead),
  // and other schemes are not HTTP.
  if (request.url.scheme !== "http") throw schemeNotSupported(request.url.scheme);
  const { host, port } = request.url;
  // The absolute-form authority wins over any Host field (RFC 9112 §3.2.2).
  return { target: { host, port }, path: originFormOf(request, request.url), headers: setHeader(headers, "Host", hostField(host, port)) };
}

/** Reverse proxy: whatever the client names, the workload answers (never an open relay). */
function reverseRoute(request: RequestHead, headers: readonly Header[], workload: DialTarget, clientIp: string): Route {
  let path: string;
  // Any scheme is sent in origin-form: the workload is dialled, never the URL's origin.
  if (request.form === "absolute" && request.url) {
    const { host, port, scheme } = request.url;
    path = originFormOf(request, request.url);
    headers = setHeader(headers, "Host", hostField(host, port, defaultPortOf(scheme)));
  } else {
    path = request.target;
    if (getHeader(headers, "host") === undefined) headers = setHeader(headers, "Host", hostField(workload.host, workload.port));
  }
  // Client-sent X-Forwarded-* and Forwarded go: the workload must not mistake them for
  // something this proxy vouches for.
  headers = withForwarded(headers, { clientIp, proto: "http", host: getHeader(headers, "host") ?? null });
  return { target: workload, path, headers };
}

/** The most Max-Forwards we pass on (RFC 9110 §7.6.2 "the recipient's maximum supported value"). */
const MAX_FORWARDS_MAX = 255;

/**
 * A TRACE's or OPTIONS's Max-Forwards (RFC 9110 §7.6.2): its value, capped; null for other
 * methods or without the field. A value that is not 1*DIGIT is a malformed request (400):
 * passed on as it came, a hop that reads it otherwise (`0\xA0` trimmed to 0) would count
 * differently from us.
 */
function maxForwardsOf(request: Pick<RequestHead, "method" | "headers">): number | null {
  if (request.method !== "TRACE" && request.method !== "OPTIONS") return null;
  const raw = getHeader(request.headers, "max-forwards");
  if (raw === undefined) return null;
  const value = trimOws(raw);
  if (!/^\d{1,10}$/.test(value)) throw new ProxyError("protocol", "invalid Max-Forwards");
  return Math.min(Number(value), MAX_FORWARDS_MAX);
}

/** What a 405 to TRACE says is allowed (RFC 9110 §15.5.6: a 405 names them): all but TRACE. */
const ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, PATCH";

/**
 * This proxy's own answer to a TRACE or OPTIONS with `Max-Forwards: 0`, or null when the
 * request goes on (RFC 9110 §7.6.2: the intermediary MUST NOT forward it and answers as its
 * final recipient). OPTIONS: 200 without content (§9.3.7). TRACE: 405, as nginx answers every
 * TRACE: an echo (§9.3.8) would hand back what hops in front of us added to the request (API
 * keys, tokens, client certificates: cross-site tracing), and would make a workload that
 * refuses TRACE look as if it answered it. The connection closes after it, as after an error.
 */
export function lastHopAnswer(request: RequestHead): Uint8Array | null {
  if (maxForwardsOf(request) !== 0) return null;
  if (request.method === "TRACE") return errorResponse(405, "TRACE is not answered (Max-Forwards: 0 made this proxy its last hop)", [{ name: "Allow", value: ALLOWED_METHODS }]);
  return serializeResponseHead(200, "OK", [{ name: "Connection", value: "close" }, { name: "Content-Length", value: "0" }]);
}

/**
 * The origin-form of an absolute-form request: its path, or `*` for an OPTIONS whose URL has
 * neither path nor query (RFC 9112 §3.2.4: the last proxy MUST send `*`, which asks about the
 * server rather than a resource).
 */
function originFormOf(request: RequestHead, url: HttpUrl): string {
  if (request.method === "OPTIONS" && url.path === "/" && !request.target.endsWith("/")) return "*";
  return url.path;
}

/**
 * The head relayed to the client, followed by body[bodyStart, bodyEnd) in the same buffer:
 * hop-by-hop removed, Via added, our Connection decision. An HTTP/1.0 client is never sent the
 * chunked coding (RFC 9112 §6.1), whether its body is then de-chunked (http-response.ts; the
 * caller passes keepAlive false, as closing ends that body) or there is none (HEAD, 204, 304 name
 * the coding a GET would have had).
 */
export function clientResponseHead(
  response: ResponseHead,
  clientVersion: "1.0" | "1.1",
  keepAlive: boolean,
  body: Uint8Array = EMPTY,
  bodyStart = 0,
  bodyEnd = body.byteLength,
): Uint8Array {
  // A plain head: the same bytes, written from the received ones.
  const plain = response instanceof PlainResponse ? response.clientHead(clientVersion, keepAlive, body, bodyStart, bodyEnd) : null;
  if (plain !== null) return plain;
  let headers = stripHopByHop(response.headers, { keepUpgrade: false });
  if (clientVersion === "1.0") headers = withoutChunked(headers);
  // RFC 9112 §6.1 and RFC 9110 §8.6: a 204 carries neither Transfer-Encoding nor Content-Length;
  // an origin that sends them anyway is corrected here (the 204 has no body whatever they say).
  if (response.status === 204) headers = headers.filter((h) => !fieldNameIs(h.name, "transfer-encoding") && !fieldNameIs(h.name, "content-length"));
  const out = withVia(headers, response.version, VIA_PSEUDONYM); // a new array: ours to extend
  if (!keepAlive) out.push(CONNECTION_CLOSE);
  else if (clientVersion === "1.0") out.push(CONNECTION_KEEP_ALIVE);
  const tail = bodyStart === 0 && bodyEnd === body.byteLength ? body : body.subarray(bodyStart, bodyEnd);
  return serializeResponseHead(response.status, response.reason, out, tail);
}

const EMPTY = new Uint8Array(0);
const CONNECTION_CLOSE: Header = Object.freeze({ name: "Connection", value: "close" });
const CONNECTION_KEEP_ALIVE: Header = Object.freeze({ name: "Connection", value: "keep-alive" });

/**
 * The fields of a response whose chunked coding we remove: Transfer-Encoding goes, and no
 * Content-Length is added (the length is not known before the end; closing delimits the body,
 * as nginx does for HTTP/1.0 clients). Trailer goes too: the trailer section is dropped, since a
 * head already sent cannot take its fields. A response with any other transfer coding never
 * gets here: the response reader answers it 502 (http-response.ts otherTransferCoding).
 */
function withoutChunked(headers: readonly Header[]): readonly Header[] {
  let chunked = false;
  for (const h of headers) if (fieldNameIs(h.name, "transfer-encoding")) chunked = true;
  if (!chunked) return headers; // the common case: nothing to do, nothing copied
  return headers.filter((h) => !fieldNameIs(h.name, "transfer-encoding") && !fieldNameIs(h.name, "trailer"));
}

/**
 * A 101 Switching Protocols (or other 1xx) relayed without its hop-by-hop fields, plus Via. A
 * 101 keeps Upgrade and `Connection: Upgrade` (the client needs both to take the switch).
 */
export function interimResponseHead(response: ResponseHead): Uint8Array {
  // RFC 9110 §8.6, RFC 9112 §6.1: a 1xx has no content and carries no framing fields.
  const framed = response.headers.filter((h) => !fieldNameIs(h.name, "content-length") && !fieldNameIs(h.name, "transfer-encoding"));
  const headers = stripHopByHop(framed, { keepUpgrade: response.status === 101 ? "always" : false });
  return serializeResponseHead(response.status, response.reason, withVia(headers, response.version, VIA_PSEUDONYM));
}

/** A Host value: the port left out when it is the scheme's default (RFC 9110 §7.2, §4.2). */
export function hostField(host: string, port: number, defaultPort: number = HTTP_DEFAULT_PORT): string {
  const h = host.includes(":") ? `[${host}]` : host;
  return port === defaultPort ? h : `${h}:${port}`;
}

/** `Proxy-Authorization: Basic base64(user:password)` (RFC 7617); false when absent or wrong. */
export function proxyAuthorized(headers: readonly Header[], verify: Verifier): boolean {
  const value = getHeader(headers, "proxy-authorization");
  if (!value) return false;
  const match = /^basic[ \t]+([A-Za-z0-9+/]+=*)[ \t]*$/i.exec(value);
  if (!match) return false;
  let decoded: Uint8Array;
  try {
    decoded = Uint8Array.from(atob(match[1]!), (c) => c.charCodeAt(0));
  } catch {
    return false;
  }
  // user-id ":" password, as octets (UTF-8 or ISO-8859-1: lib/auth.ts); ":" is 0x3A in both.
  const colon = decoded.indexOf(COLON);
  if (colon < 0) return false;
  return verify(decoded.subarray(0, colon), decoded.subarray(colon + 1));
}

const COLON = 0x3a;

/** SPEC §4 error response for a kind: status from ERROR_TABLE, a short reason as the body (none to a HEAD request). */
export function errorFor(err: ProxyError, toHead = false): Uint8Array {
  const row = ERROR_TABLE[err.kind];
  const body = err.message && err.message !== row.reason ? `${row.reason}: ${err.message}` : row.reason;
  const extra: Header[] = err.kind === "authFailed" ? [{ name: "Proxy-Authenticate", value: `Basic realm="${VIA_PSEUDONYM}", charset="UTF-8"` }] : [];
  return errorResponse(row.http, body, extra, toHead);
}

export const CONNECT_ESTABLISHED = new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n");

const HEAD_SP = new TextEncoder().encode("HEAD ");

/**
 * A request's bytes start with `HEAD ` (after the empty lines a request may follow): for a head
 * that could not be parsed, whether its error answer must leave out the content (RFC 9110
 * §9.3.2). Methods are case-sensitive (§9.1).
 */
export function isHeadRequest(buf: Uint8Array): boolean {
  const i = afterEmptyLines(buf);
  if (buf.length - i < HEAD_SP.length) return false;
  for (let j = 0; j < HEAD_SP.length; j++) if (buf[i + j] !== HEAD_SP[j]) return false;
  return true;
}

/** Bytes of a request beyond the empty lines that may precede one (RFC 9112 §2.2). */
export function beginsRequest(buf: Uint8Array): boolean {
  return afterEmptyLines(buf) < buf.length;
}

function afterEmptyLines(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length && (buf[i] === CR || buf[i] === LF)) i++;
  return i;
}
