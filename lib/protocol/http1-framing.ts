/**
 * Message body length and connection options from the header fields: RFC 9112 §6 (Transfer-
 * Encoding, Content-Length, message body length), §9.3 (persistence), RFC 9110 §7.6.1
 * (Connection), §7.8 (Upgrade), §8.6 (Content-Length), §10.1.1 (Expect). Pure; used by http1.ts and the HTTP listeners.
 *
 * Requests (every ambiguity is a 400, because the server behind us may resolve it differently):
 * - Content-Length with Transfer-Encoding; more than one Content-Length line (even identical:
 *   nginx does the same, and nothing legitimate sends two); a value that is not 1*DIGIT or is
 *   over 2^53-1; Transfer-Encoding in HTTP/1.0; more than one Transfer-Encoding line; a coding
 *   list whose final coding is not chunked, or with chunked twice (RFC 9112 §6.3 rule 4).
 * - `Transfer-Encoding: gzip, chunked` (well formed, chunked final, but a coding we do not
 *   relay) is 501 "commandNotSupported", as RFC 9112 §6.1 suggests.
 * - CONNECT with a body (Content-Length over 0, or Transfer-Encoding) is 400 (RFC 9110 §9.3.6).
 *
 * Responses (tolerant where the RFC says how, never guessing):
 * - Transfer-Encoding with Content-Length: Transfer-Encoding wins and the Content-Length lines
 *   are removed from the head we return (RFC 9112 §6.3 rule 3: a proxy MUST remove it).
 * - Repeated identical Content-Length values are merged into one line (RFC 9110 §8.6);
 *   differing or invalid ones are 502 "upstreamProtocol" (RFC 9112 §6.3 rule 5).
 * - A coding list not ending in chunked means read-until-close (§6.3 rule 4); chunked twice,
 *   or Transfer-Encoding in an HTTP/1.0 response, is 502 (§6.1).
 */
import { ProxyError, type ErrorKind } from "../errors.ts";
import type { BodyFraming, Header } from "./http1.ts";
import { fieldNameIs, isToken, parseDigitOctets, parseDigits, trimOws } from "./http1-scan.ts";

/** Number.MAX_SAFE_INTEGER has 16 digits; longer is over 2^53 whatever the digits. */
const MAX_LENGTH_DIGITS = 16;
const CHUNKED = "chunked";

export interface FieldFacts {
  readonly hosts: readonly string[];
  readonly contentLengths: readonly string[];
  readonly transferEncodings: readonly string[];
  /** Lower-cased tokens of every Connection line. */
  readonly connection: readonly string[];
  /** Lower-cased tokens of every Proxy-Connection line (non-standard; see requestKeepAlive). */
  readonly proxyConnection: readonly string[];
  readonly upgrade: string | null;
  readonly expect: string | null;
}

/** The framings without a length, shared: a head's framing is never mutated. */
export const NO_BODY: BodyFraming = Object.freeze({ kind: "none" });
export const CHUNKED_BODY: BodyFraming = Object.freeze({ kind: "chunked" });
export const CLOSE_BODY: BodyFraming = Object.freeze({ kind: "close" });

/** What a fact list is until its first value: most heads fill one or two of the four. */
const NONE: readonly string[] = Object.freeze([]);

/** One pass over the fields, collecting what framing and routing depend on. */
export function collectFacts(headers: readonly Header[]): FieldFacts {
  let hosts: string[] | null = null;
  let contentLengths: string[] | null = null;
  let transferEncodings: string[] | null = null;
  let connection: string[] | null = null;
  let proxyConnection: string[] | null = null;
  let upgrade: string | null = null;
  let expect: string | null = null;
  for (const h of headers) {
    const n = h.name;
    // Dispatch on length first: most fields are none of these and cost one comparison.
    switch (n.length) {
      case 4:
        if (fieldNameIs(n, "host")) (hosts ??= []).push(h.value);
        break;
      case 6:
        if (fieldNameIs(n, "expect")) expect = h.value;
        break;
      case 7:
        if (fieldNameIs(n, "upgrade")) upgrade = upgrade === null ? h.value : `${upgrade}, ${h.value}`;
        break;
      case 10:
        if (fieldNameIs(n, "connection")) listTokens(h.value, (connection ??= []));
        break;
      case 14:
        if (fieldNameIs(n, "content-length")) (contentLengths ??= []).push(h.value);
        break;
      case 16:
        if (fieldNameIs(n, "proxy-connection")) listTokens(h.value, (proxyConnection ??= []));
        break;
      case 17:
        if (fieldNameIs(n, "transfer-encoding")) (transferEncodings ??= []).push(h.value);
        break;
    }
  }
  return {
    hosts: hosts ?? NONE,
    contentLengths: contentLengths ?? NONE,
    transferEncodings: transferEncodings ?? NONE,
    connection: connection ?? NONE,
    proxyConnection: proxyConnection ?? NONE,
    upgrade,
    expect,
  };
}

/** RFC 9110 §5.6.1 #list elements, trimmed and lower-cased, empty elements dropped. */
export function listTokens(value: string, out: string[] = []): string[] {
  for (const part of value.split(",")) {
    const t = trimOws(part).toLowerCase();
    if (t !== "") out.push(t);
  }
  return out;
}

/** RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive". */
export function keepAliveOf(version: "1.0" | "1.1", connection: readonly string[]): boolean {
  if (connection.includes("close")) return false;
  return version === "1.1" || connection.includes("keep-alive");
}

/**
 * A request's: its Proxy-Connection counts as Connection does. Clients configured for a proxy
 * still send it (curl -0 sends `Proxy-Connection: Keep-Alive` and no Connection), and Squid
 * reads it so; its `close` closes, its `keep-alive` keeps an HTTP/1.0 connection.
 */
export function requestKeepAlive(version: "1.0" | "1.1", facts: FieldFacts): boolean {
  if (facts.proxyConnection.length === 0) return keepAliveOf(version, facts.connection);
  if (facts.proxyConnection.includes("close")) return false;
  return keepAliveOf(version, facts.connection) || (!facts.connection.includes("close") && facts.proxyConnection.includes("keep-alive"));
}

/** Content-Length = 1*DIGIT (RFC 9110 §8.6), at most 2^53-1; null when invalid. */
export function parseContentLength(v: string): number | null {
  const n = parseDigits(v, MAX_LENGTH_DIGITS);
  return n !== null && Number.isSafeInteger(n) ? n : null;
}

/** parseContentLength over the octets buf[s, e). */
export function parseContentLengthAt(buf: Uint8Array, s: number, e: number): number | null {
  const n = parseDigitOctets(buf, s, e, MAX_LENGTH_DIGITS);
  return n !== null && Number.isSafeInteger(n) ? n : null;
}

/** Codings of one Transfer-Encoding value; null when the list syntax is broken (empty member). */
function codings(value: string): string[] | null {
  const parts = value.split(",");
  const out: string[] = [];
  for (const p of parts) {
    const t = trimOws(p).toLowerCase();
    if (t === "") return null;
    out.push(t);
  }
  return out;
}

/** RFC 9112 §6.3 for a request. */
export function requestFraming(version: "1.0" | "1.1", method: string, f: FieldFacts): BodyFraming {
  const te = f.transferEncodings;
  const cl = f.contentLengths;
  if (te.length > 0) {
    if (version === "1.0") throw new ProxyError("protocol", "Transfer-Encoding in an HTTP/1.0 request");
    if (cl.length > 0) throw new ProxyError("protocol", "both Transfer-Encoding and Content-Length");
    if (te.length > 1) throw new ProxyError("protocol", "more than one Transfer-Encoding line");
    const list = codings(te[0]!);
    if (list === null || list[list.length - 1] !== CHUNKED || list.indexOf(CHUNKED) !== list.length - 1) {
      throw new ProxyError("protocol", "Transfer-Encoding must end with a single chunked");
    }
    // The name of the first coding, checked to be a token before it is named in the 501's body
    // (it is client input: "<script>..., chunked" got 501 with the script in its text).
    const name = trimOws(list[0]!.split(";", 1)[0]!);
    if (list.length > 1 && !isToken(name)) throw new ProxyError("protocol", "invalid transfer coding in Transfer-Encoding");
    if (list.length > 1) throw new ProxyError("commandNotSupported", `transfer coding ${name} not supported`);
    if (method === "CONNECT") throw new ProxyError("protocol", "CONNECT with a body");
    return CHUNKED_BODY;
  }
  if (cl.length === 0) return NO_BODY;
  if (cl.length > 1) throw new ProxyError("protocol", "more than one Content-Length line");
  const length = parseContentLength(cl[0]!);
  if (length === null) throw new ProxyError("protocol", "invalid Content-Length");
  if (method === "CONNECT" && length > 0) throw new ProxyError("protocol", "CONNECT with a body");
  return { kind: "length", length };
}

export interface ResponseFieldFraming {
  /** Framing from the fields alone (status 1xx/204/304 included); the request method is not known here. */
  readonly framing: BodyFraming;
  /** The fields to forward: Content-Length lines removed or merged as described above. */
  readonly headers: Header[];
}

/** RFC 9112 §6.3 rules 3-7 for a response, before the request method is applied. */
export function responseFieldFraming(version: "1.0" | "1.1", status: number, headers: Header[], f: FieldFacts): ResponseFieldFraming {
  const kind: ErrorKind = "upstreamProtocol";
  const te = f.transferEncodings;
  const cl = f.contentLengths;
  if (te.length > 0) {
    if (version === "1.0") throw new ProxyError(kind, "Transfer-Encoding in an HTTP/1.0 response");
    const list = codings(te.join(","));
    // A coding's name is a token (RFC 9112 §7): `chunked\xA0` is none, neither chunked nor an
    // unknown coding to read until close (a client that trims it would read it as chunked).
    if (list === null || list.some((c) => !isToken(trimOws(c.split(";", 1)[0]!)))) throw new ProxyError(kind, "invalid Transfer-Encoding");
    const chunkedAt = list.indexOf(CHUNKED);
    if (chunkedAt >= 0 && chunkedAt !== list.length - 1) throw new ProxyError(kind, "chunked applied twice or not last");
    const out = cl.length > 0 ? headers.filter((h) => !fieldNameIs(h.name, "content-length")) : headers;
    const framing = noBodyStatus(status) ? NO_BODY : chunkedAt >= 0 ? CHUNKED_BODY : CLOSE_BODY;
    return { framing, headers: out };
  }
  if (cl.length === 0) return { framing: noBodyStatus(status) ? NO_BODY : CLOSE_BODY, headers };
  let length = -1;
  // The usual head: one line, one value.
  if (cl.length === 1) length = parseContentLength(cl[0]!) ?? -1;
  if (length >= 0) return { framing: noBodyStatus(status) ? NO_BODY : { kind: "length", length }, headers };
  for (const v of cl) {
    // A line may itself be a list of identical values ("42, 42"), RFC 9110 §8.6.
    for (const part of v.split(",")) {
      const n = parseContentLength(trimOws(part));
      if (n === null || (length >= 0 && n !== length)) throw new ProxyError(kind, "invalid or conflicting Content-Length");
      length = n;
    }
  }
  const merged = cl.length > 1 || cl[0]!.includes(",") ? mergeContentLength(headers, length) : headers;
  return { framing: noBodyStatus(status) ? NO_BODY : { kind: "length", length }, headers: merged };
}

function mergeContentLength(headers: Header[], length: number): Header[] {
  const out: Header[] = [];
  let seen = false;
  for (const h of headers) {
    if (!fieldNameIs(h.name, "content-length")) out.push(h);
    else if (!seen) {
      seen = true;
      out.push({ name: h.name, value: String(length) });
    }
  }
  return out;
}

/** RFC 9110 §15.2, §15.3.5, §15.4.5: 1xx, 204 and 304 never have content. */
export function noBodyStatus(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}
