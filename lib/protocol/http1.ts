/**
 * HTTP/1.1 message heads, sans-IO: RFC 9112 (HTTP/1.1 message syntax) with RFC 9110 (semantics).
 * Bytes in, a parsed head or "need more" out; errors are thrown as ProxyError whose kind carries
 * the HTTP status (400 protocol, 414 uriTooLong, 431 headersTooLarge, 501 commandNotSupported,
 * 505 versionNotSupported; every upstream fault is 502 upstreamProtocol). Body framing lives in http-body.ts.
 *
 * The parts, one seam per file: http1-scan.ts (finding the head, field-line syntax),
 * http1-target.ts (request-line, target forms, authority), http1-framing.ts (Content-Length,
 * Transfer-Encoding, Connection), http1-write.ts (serialization, error responses). Each opens
 * with the choices it makes where the RFCs leave room; in short: strict on requests (every
 * smuggling-relevant ambiguity is rejected, nothing is forwarded), tolerant on responses only
 * where the RFC says exactly how.
 *
 * Incremental use: the driver keeps one `HeadScan` per connection and passes it with its growing
 * buffer (the buffer must start at the message and keep its earlier bytes in place). Each call then
 * resumes the scan where the last stopped, so feeding a head byte by byte is linear, and the
 * 414/431 limits fire as soon as they are crossed, before the head is complete. The scan resets
 * itself after a head is returned or an error thrown. Without a HeadScan each call starts over.
 *
 * Deliberately not supported: HTTP/0.9 (400) and HTTP/2 (505), absolute-form with a scheme other than
 * http on a forward listener (501: https needs TLS from us, clients reach it with CONNECT; a
 * reverse listener sends any scheme to its workload, http1-target.ts), obs-fold (400 / 502),
 * transfer codings other than chunked on requests (501).
 */
import { ProxyError } from "../errors.ts";
import { collectFacts, keepAliveOf, listTokens, NO_BODY, noBodyStatus, requestFraming, requestKeepAlive, responseFieldFraming } from "./http1-framing.ts";
import { DIGIT_0, DIGIT_9, FIELD_CHAR, fieldNameIs, HTTP_VERSION_LENGTH, HeadScan, headersFromSpans, latin1, scanFieldLines, SP, versionAt } from "./http1-scan.ts";
import { isValidHostField, parseTarget, scanRequestLine, scanVersion, type Authority, type HttpUrl } from "./http1-target.ts";

export { fieldNameIs, HeadScan } from "./http1-scan.ts";
export type { Authority, HttpUrl, TargetForm } from "./http1-target.ts";
export { errorResponse, reasonPhrase, serializeRequestHead, serializeResponseHead, STATUS_TEXT } from "./http1-write.ts";

/** A field line: name as received (case kept), value without leading/trailing OWS. */
export interface Header {
  readonly name: string;
  readonly value: string;
}

/** How the end of a body is found (RFC 9112 §6.3). "close": read until EOF (responses only). */
export type BodyFraming = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };

export interface RequestHead {
  readonly method: string;
  /** As received. */
  readonly target: string;
  readonly form: "origin" | "absolute" | "authority" | "asterisk";
  readonly version: "1.0" | "1.1";
  /** In order, duplicates kept. */
  readonly headers: Header[];
  /** absolute-form: scheme "http" or "https", lower-case; path is origin-form ("/" when empty, query kept). */
  readonly url?: HttpUrl;
  /** authority-form (CONNECT): host without brackets, port required. */
  readonly authority?: Authority;
  readonly framing: BodyFraming;
  /** RFC 9112 §9.3: per version and the Connection header. */
  readonly keepAlive: boolean;
  /** `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1: ignored in HTTP/1.0). */
  readonly expectContinue: boolean;
  /** The Upgrade value when Connection lists "upgrade" (HTTP/1.1 only, RFC 9110 §7.8). */
  readonly upgrade: string | null;
}

export interface ResponseHead {
  readonly version: "1.0" | "1.1";
  readonly status: number;
  readonly reason: string;
  /** In order; Content-Length removed when Transfer-Encoding is present, identical repeats merged. */
  readonly headers: Header[];
  /** Per version and Connection only; a response framed by "close" also ends the connection. */
  readonly keepAlive: boolean;
  /** Framing from status and fields alone. Use responseFraming(), which also knows the method. */
  readonly headerFraming: BodyFraming;
}

export type HeadResult<T> = { ok: true; head: T; consumed: number } | { ok: false; needMore: true };

export interface HeadLimits {
  readonly maxRequestLineBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
}

const NEED_MORE: { ok: false; needMore: true } = Object.freeze({ ok: false, needMore: true });

/**
 * A fast path offered each complete head before it is built the general way: `scan` holds its
 * line offsets (buf[0, end) is the head). It returns a head of its own, or null to decline. One
 * that accepts must return what the general build would, and may throw only what the general
 * build throws first (lib/listeners/http-plain-request.ts and -response.ts are the ones in use).
 */
export interface HeadShortcut<T> {
  take(buf: Uint8Array, scan: HeadScan, end: number): T | null;
}

/** Parses one request head from the start of buf; `consumed` is where the body (or next message) starts. */
export function parseRequestHead(buf: Uint8Array, limits: HeadLimits, scan: HeadScan = new HeadScan(), shortcut?: HeadShortcut<RequestHead>): HeadResult<RequestHead> {
  return parseHead(buf, limits, scan, true, buildRequest, shortcut);
}

/** Finds the head (resuming `scan`), builds it, and leaves the scan ready for the next message. */
function parseHead<T>(
  buf: Uint8Array,
  limits: HeadLimits,
  scan: HeadScan,
  request: boolean,
  build: (buf: Uint8Array, scan: HeadScan, end: number) => T,
  shortcut: HeadShortcut<T> | undefined,
): HeadResult<T> {
  const end = scan.scan(buf, limits, request);
  if (end < 0) return NEED_MORE;
  try {
    return { ok: true, head: shortcut?.take(buf, scan, end) ?? build(buf, scan, end), consumed: end };
  } finally {
    scan.reset();
  }
}

function buildRequest(buf: Uint8Array, scan: HeadScan, end: number): RequestHead {
  const s = scan.startLine;
  const line = scanRequestLine(buf, s, scan.startLineEnd - 2);
  const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "protocol");
  const text = latin1(buf, s, end);
  const method = text.slice(0, line.methodEnd - s);
  const target = text.slice(line.targetStart - s, line.targetEnd - s);
  const headers = headersFromSpans(text, s, spans);
  const facts = collectFacts(headers);
  const { version } = line;
  // RFC 9112 §3.2: 400 for a missing Host (HTTP/1.1), more than one, or an invalid value.
  if (facts.hosts.length > 1) throw new ProxyError("protocol", "more than one Host");
  if (facts.hosts.length === 0 && version === "1.1") throw new ProxyError("protocol", "missing Host");
  if (facts.hosts.length === 1 && !isValidHostField(facts.hosts[0]!)) throw new ProxyError("protocol", "invalid Host");
  const parsed = parseTarget(method, target);
  const is11 = version === "1.1";
  return {
    method,
    target,
    form: parsed.form,
    version,
    headers,
    url: parsed.url, // undefined unless absolute-form (one object shape for every head)
    authority: parsed.authority,
    framing: requestFraming(version, method, facts),
    keepAlive: requestKeepAlive(version, facts),
    expectContinue: is11 && facts.expect !== null && facts.expect.toLowerCase() === "100-continue",
    upgrade: is11 && facts.connection.includes("upgrade") ? facts.upgrade : null,
  };
}

/** Parses one response head (1xx included: call again for the final one). Errors: upstreamProtocol. */
export function parseResponseHead(buf: Uint8Array, limits: HeadLimits, scan: HeadScan = new HeadScan(), shortcut?: HeadShortcut<ResponseHead>): HeadResult<ResponseHead> {
  return parseHead(buf, limits, scan, false, buildResponse, shortcut);
}

const STATUS_LINE_MIN = 12; // "HTTP/1.1 200"
/** Where the reason-phrase starts, from the status-line's first octet (when the line is longer). */
export const REASON_START = STATUS_LINE_MIN + 1;

function buildResponse(buf: Uint8Array, scan: HeadScan, end: number): ResponseHead {
  const s = scan.startLine;
  const e = scan.startLineEnd - 2;
  const status = scanStatusLine(buf, s, e);
  const version = statusLineVersion(buf, s);
  const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "upstreamProtocol");
  const text = latin1(buf, s, end);
  const reason = e > s + STATUS_LINE_MIN ? text.slice(REASON_START, e - s) : "";
  const raw = headersFromSpans(text, s, spans);
  const facts = collectFacts(raw);
  const { framing, headers } = responseFieldFraming(version, status, raw, facts);
  return { version, status, reason, headers, keepAlive: keepAliveOf(version, facts.connection), headerFraming: framing };
}

/** Checks the status-line over buf[s, e) (CRLF excluded) and returns its status code. */
export function scanStatusLine(buf: Uint8Array, s: number, e: number): number {
  // RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase]. The SP before an empty reason is
  // tolerated when missing (unambiguous, and some servers omit it).
  if (e - s < STATUS_LINE_MIN || buf[s + HTTP_VERSION_LENGTH] !== SP || (e > s + STATUS_LINE_MIN && buf[s + STATUS_LINE_MIN] !== SP)) {
    throw new ProxyError("upstreamProtocol", "malformed status-line");
  }
  scanVersion(buf, s, s + HTTP_VERSION_LENGTH, "upstreamProtocol");
  let status = 0;
  for (let i = s + HTTP_VERSION_LENGTH + 1; i < s + STATUS_LINE_MIN; i++) {
    const c = buf[i]!;
    if (c < DIGIT_0 || c > DIGIT_9) throw new ProxyError("upstreamProtocol", "malformed status code");
    status = status * 10 + (c - DIGIT_0);
  }
  if (status < 100 || status > 599) throw new ProxyError("upstreamProtocol", `status code ${status} out of range`);
  for (let i = s + STATUS_LINE_MIN + 1; i < e; i++) {
    if (FIELD_CHAR[buf[i]!] !== 1) throw new ProxyError("upstreamProtocol", "control character in reason-phrase");
  }
  return status;
}

/** The version of a status-line that scanStatusLine accepted ("HTTP/1.x" at s; above 1.1 read as 1.1). */
export function statusLineVersion(buf: Uint8Array, s: number): "1.0" | "1.1" {
  return versionAt(buf, s);
}

/**
 * RFC 9112 §6.3 rules 1-2: no body after HEAD, 1xx, 204, 304, nor after a 2xx to CONNECT (the
 * connection becomes a tunnel); otherwise what the fields say (chunked, length or close).
 */
export function responseFraming(req: { readonly method: string }, res: ResponseHead): BodyFraming {
  if (req.method === "HEAD" || noBodyStatus(res.status)) return NO_BODY;
  if (req.method === "CONNECT" && res.status >= 200 && res.status < 300) return NO_BODY;
  return res.headerFraming;
}

/**
 * RFC 9110 §7.8: a 101 names in Upgrade the protocols it switches to, and a server MUST NOT
 * switch to one the request did not offer. True when every protocol of the response's Upgrade
 * is in `offered` (the request's Upgrade value): names compared case-insensitively, versions
 * too when both sides give one. A 101 without Upgrade offers nothing to check: false.
 */
export function upgradeOffered(offered: string, response: ResponseHead): boolean {
  let chosen: string | null = null;
  for (const h of response.headers) if (fieldNameIs(h.name, "upgrade")) chosen = chosen === null ? h.value : `${chosen}, ${h.value}`;
  if (chosen === null) return false;
  const offers = listTokens(offered);
  const picks = listTokens(chosen);
  return picks.length > 0 && picks.every((pick) => offers.some((offer) => sameProtocol(offer, pick)));
}

/** "websocket" and "websocket/13": the same protocol; "h2c" and "websocket", or "/13" and "/8": not. */
function sameProtocol(a: string, b: string): boolean {
  if (a === b) return true;
  const [aName, aVersion] = a.split("/", 2);
  const [bName, bVersion] = b.split("/", 2);
  return aName === bName && (aVersion === undefined || bVersion === undefined);
}
