/**
 * The plain request shortcut (http-plain.ts says what plain means and why): a plain request is
 * written for the next hop straight from the received octets, byte for byte what routeRequest
 * (http-message.ts) would send.
 * - Reverse listeners (PlainReverseRequests): origin-form, to the workload, with this proxy's
 *   X-Forwarded-For/-Proto/-Host in place of every X-Forwarded-* and Forwarded the client sent.
 * - Forward listeners (PlainForwardRequests): absolute-form `http://authority[path]`, to the
 *   origin it names, in origin-form, with Host set to that authority in place; Forwarded and
 *   X-Forwarded-* are the client's business and stay.
 */
import { hostPort } from "../address.ts";
import type { DialTarget } from "../dial.ts";
import { displayIp } from "../http/hop.ts";
import type { BodyFraming, Header, HeadScan, HeadShortcut, HttpUrl, RequestHead } from "../protocol/http1.ts";
import { CHUNKED_BODY, NO_BODY } from "../protocol/http1-framing.ts";
import { headersFromSpans, latin1, scanFieldLines } from "../protocol/http1-scan.ts";
import { HTTP_DEFAULT_PORT, isValidHostField, parseAuthority, scanRequestLine } from "../protocol/http1-target.ts";
import { hostField } from "./http-message.ts";
import {
  ASCII,
  CONTENT_LENGTH,
  copy,
  crlf,
  CRLF_LENGTH,
  FORWARDED,
  HOST,
  HTTP11,
  keptSize,
  NO_OCTETS,
  OTHER,
  PLAIN_FIELDS,
  put,
  TRANSFER_ENCODING,
  VIA,
  VIA_LINE,
  VIA_VALUE,
  writeKept,
} from "./http-plain.ts";

/** Kept on a reverse request: Host, the framing fields, Via and every field the rewriting does not touch. */
const keptOnReverse = (kind: number): boolean => kind === OTHER || kind === HOST || kind === CONTENT_LENGTH || kind === TRANSFER_ENCODING || kind === VIA;
/** Kept on a forward request: the same and Forwarded, X-Forwarded-* (Host gets the target's authority). */
const keptOnForward = (kind: number): boolean => keptOnReverse(kind) || kind === FORWARDED;

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"].map((m) => ({ name: m, bytes: ASCII.encode(m) }));
const CONNECT_METHOD = ASCII.encode("CONNECT");
const SLASH = 0x2f;
const QUESTION = 0x3f;
/** "http://", the scheme in any case (RFC 9110 §4.2.1, RFC 3986 §3.1). */
const HTTP_PREFIX = ASCII.encode("http://");
const SCHEME_LENGTH = 4;

/** buf[s, e) is exactly `bytes` (methods are case-sensitive, RFC 9110 §9.1). */
function sameBytes(buf: Uint8Array, s: number, e: number, bytes: Uint8Array): boolean {
  if (e - s !== bytes.byteLength) return false;
  for (let i = 0; i < bytes.byteLength; i++) if (buf[s + i] !== bytes[i]) return false;
  return true;
}

/** buf[s, e) starts with "http://", the scheme's letters in any case. */
function hasHttpScheme(buf: Uint8Array, s: number, e: number): boolean {
  if (e - s < HTTP_PREFIX.byteLength) return false;
  for (let i = 0; i < HTTP_PREFIX.byteLength; i++) {
    const c = i < SCHEME_LENGTH ? buf[s + i]! | 0x20 : buf[s + i];
    if (c !== HTTP_PREFIX[i]) return false;
  }
  return true;
}

/** The common methods as shared strings; others are sliced. */
function methodName(buf: Uint8Array, s: number, e: number): string {
  for (const m of METHODS) if (sameBytes(buf, s, e, m.bytes)) return m.name;
  return latin1(buf, s, e);
}

/**
 * Forward listeners: the origin an absolute-form target names, as routeRequest dials it and
 * names it (one per distinct authority on a connection: clients send the same one each time).
 */
export interface PlainOrigin extends DialTarget {
  /** formatTarget of host and port: the exchange's target key. */
  readonly key: string;
  /** hostField(host, port): the Host value the origin is sent. */
  readonly hostValue: Uint8Array;
}

/**
 * A request head the shortcut accepted. What routeRequest would send the next hop is written
 * when it is sent (writeUpstreamHead, into plainOutput), or made by `upstreamHead`.
 *
 * One per connection, filled anew for each plain request (`set`): a head on bytes then costs no
 * allocation. The session parses the next request only once the exchange of the last one is
 * over, and nothing keeps a head past its exchange; its spans (the request HeadScan's) and its
 * length framing are renewed with it.
 */
export class PlainRequest implements RequestHead {
  /** Origin-form on a reverse listener; absolute-form (with `origin`) on a forward one. */
  readonly form: "origin" | "absolute";
  readonly authority = undefined;
  readonly expectContinue = false;
  readonly upgrade = null;
  method = "";
  version: "1.0" | "1.1" = "1.1";
  framing: BodyFraming = NO_BODY;
  keepAlive = true;
  /** Forward: where the request goes; null on a reverse listener (the workload). */
  origin: PlainOrigin | null = null;
  #target: string | null = null;
  #headers: Header[] | null = null;
  #url: HttpUrl | undefined = undefined;
  private buf: Uint8Array = NO_OCTETS;
  private start = 0;
  private end = 0;
  private targetStart = 0;
  private targetEnd = 0;
  /** What goes on the upstream request line: the target (reverse) or its path (forward, "/" added when it is empty or a query). */
  private pathStart = 0;
  private slash = false;
  private spans: readonly number[] = [];
  /** Each field line's kind (PlainFields.read), filled by the shortcut before `set`. */
  readonly kinds: number[] = [];
  /** The offsets in spans of the Host line and of the last Via line (-1: none). */
  private host = 0;
  private via = -1;
  private readonly lengthFraming = { kind: "length" as const, length: 0 };

  /**
   * `forwarded` (reverse): the connection's X-Forwarded-For and -Proto lines and X-Forwarded-Host's
   * name; null on a forward listener.
   */
  constructor(private readonly forwarded: Uint8Array | null) {
    this.form = forwarded === null ? "absolute" : "origin";
  }

  /** This head is now buf[start, end); `length` < 0: no Content-Length; `host`: the Host line's offset in spans. */
  set(method: string, version: "1.0" | "1.1", chunked: boolean, length: number, keepAlive: boolean, buf: Uint8Array, start: number, end: number, targetStart: number, targetEnd: number, spans: readonly number[], host: number, via: number): this {
    this.method = method;
    this.version = version;
    if (chunked) this.framing = CHUNKED_BODY;
    else if (length < 0) this.framing = NO_BODY;
    else {
      this.lengthFraming.length = length;
      this.framing = this.lengthFraming;
    }
    this.keepAlive = keepAlive;
    this.#target = null;
    this.#headers = null;
    this.#url = undefined;
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.targetStart = targetStart;
    this.targetEnd = targetEnd;
    this.pathStart = targetStart;
    this.slash = false;
    this.spans = spans;
    this.host = host;
    this.via = via;
    return this;
  }

  /** Forward: the target's origin, and where its path starts (pathStart = targetEnd: none). */
  setOrigin(origin: PlainOrigin, pathStart: number): this {
    this.origin = origin;
    this.pathStart = pathStart;
    this.slash = pathStart === this.targetEnd || this.buf[pathStart] === QUESTION;
    return this;
  }

  get target(): string {
    return (this.#target ??= latin1(this.buf, this.targetStart, this.targetEnd));
  }

  get headers(): Header[] {
    return (this.#headers ??= headersFromSpans(latin1(this.buf, this.start, this.end), this.start, this.spans));
  }

  /** Forward: the absolute-form target as parseTarget gives it (made when read). */
  get url(): HttpUrl | undefined {
    const origin = this.origin;
    if (origin === null) return undefined;
    return (this.#url ??= { scheme: "http", host: origin.host, port: origin.port, path: (this.slash ? "/" : "") + latin1(this.buf, this.pathStart, this.targetEnd) });
  }

  /** The head for the next hop in a buffer of its own. */
  get upstreamHead(): Uint8Array {
    const out = new Uint8Array(this.upstreamHeadSize());
    this.writeUpstreamHead(out);
    return out;
  }

  upstreamHeadSize(): number {
    const { origin, via } = this;
    const method = this.targetStart - this.start;
    const startLine = method + (this.slash ? 1 : 0) + this.targetEnd - this.pathStart + 1 + HTTP11.byteLength + CRLF_LENGTH;
    const viaLine = via < 0 ? VIA_LINE[this.version].byteLength : 0;
    if (origin !== null) {
      return startLine + keptSize(this.spans, this.kinds, keptOnForward, via, VIA_VALUE[this.version], this.host, origin.hostValue) + viaLine + CRLF_LENGTH;
    }
    const hostValue = this.spans[this.host + 3]! - this.spans[this.host + 2]!;
    const added = this.forwarded!.byteLength + hostValue + CRLF_LENGTH + viaLine;
    return startLine + keptSize(this.spans, this.kinds, keptOnReverse, via, VIA_VALUE[this.version], -1, NO_OCTETS) + added + CRLF_LENGTH;
  }

  /**
   * Writes the head for the next hop into out from 0 and returns its length: method SP path SP
   * HTTP/1.1 CRLF, the kept fields (forward: Host's value replaced), X-Forwarded-* (reverse),
   * Via unless appended, CRLF.
   */
  writeUpstreamHead(out: Uint8Array): number {
    const { buf, spans, via, origin } = this;
    let p = copy(out, 0, buf, this.start, this.targetStart);
    if (this.slash) out[p++] = SLASH;
    p = copy(out, p, buf, this.pathStart, this.targetEnd + 1); // and the SP after it
    p = crlf(out, put(out, p, HTTP11));
    if (origin !== null) p = writeKept(out, p, buf, spans, this.kinds, keptOnForward, via, VIA_VALUE[this.version], this.host, origin.hostValue);
    else {
      p = writeKept(out, p, buf, spans, this.kinds, keptOnReverse, via, VIA_VALUE[this.version], -1, NO_OCTETS);
      p = put(out, p, this.forwarded!);
      p = crlf(out, copy(out, p, buf, spans[this.host + 2]!, spans[this.host + 3]!)); // X-Forwarded-Host's value
    }
    if (via < 0) p = put(out, p, VIA_LINE[this.version]);
    return crlf(out, p);
  }
}

/**
 * What both shortcuts check. The start line is scanned first and the field lines next, as the
 * general build does, so what they throw is what it throws; every other check only declines
 * (a target of the other kind and CONNECT before the fields are scanned). Null: not plain.
 */
abstract class PlainRequests implements HeadShortcut<RequestHead> {
  /** The last Host value found valid on this connection: clients send the same one each time. */
  private validHost: Uint8Array = NO_OCTETS;

  constructor(protected readonly request: PlainRequest) {}

  take(buf: Uint8Array, scan: HeadScan, end: number): PlainRequest | null {
    const s = scan.startLine;
    const line = scanRequestLine(buf, s, scan.startLineEnd - 2);
    // Declining before the field lines are scanned leaves their errors to the general build.
    if (!this.plainTarget(buf, line.targetStart, line.targetEnd)) return null;
    if (sameBytes(buf, s, line.methodEnd, CONNECT_METHOD)) return null;
    const version = line.version;
    const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "protocol", scan.spans);
    const fields = PLAIN_FIELDS;
    if (!fields.read(buf, spans, true, this.request.kinds) || fields.host < 0 || (fields.chunked && fields.length >= 0)) return null;
    // RFC 9112 §6.1: the general path refuses Transfer-Encoding in an HTTP/1.0 request.
    if (fields.chunked && version === "1.0") return null;
    const { host, via, length } = fields;
    const hostStart = spans[host + 2]!;
    const hostEnd = spans[host + 3]!;
    if (!sameBytes(buf, hostStart, hostEnd, this.validHost)) {
      if (!isValidHostField(latin1(buf, hostStart, hostEnd))) return null;
      this.validHost = buf.slice(hostStart, hostEnd);
    }

    const method = methodName(buf, s, line.methodEnd);
    // Max-Forwards (RFC 9110 §7.6.2) is read on these two only: the general path's.
    if (method === "TRACE" || method === "OPTIONS") return null;
    // RFC 9112 §9.3 (http1-framing.ts keepAliveOf): HTTP/1.0 stays open only when asked to.
    const keepAlive = !fields.close && (version === "1.1" || fields.keepAliveToken);
    const request = this.request.set(method, version, fields.chunked, length, keepAlive, buf, s, end, line.targetStart, line.targetEnd, spans, host, via);
    return this.routed(request, buf, line.targetStart, line.targetEnd);
  }

  /** Whether buf[s, e), a request-target, is one this shortcut takes (checked before the fields). */
  protected abstract plainTarget(buf: Uint8Array, s: number, e: number): boolean;
  /** The accepted head, with what the listener kind adds to it; null to decline after all. */
  protected abstract routed(request: PlainRequest, buf: Uint8Array, targetStart: number, targetEnd: number): PlainRequest | null;
}

/**
 * The request shortcut of one reverse-listener connection: the client's address is fixed for
 * the connection, so its X-Forwarded-For and -Proto lines are written once.
 */
export class PlainReverseRequests extends PlainRequests {
  constructor(clientIp: string) {
    // "X-Forwarded-For: ip" CRLF "X-Forwarded-Proto: http" CRLF "X-Forwarded-Host: " (hop.ts withForwarded).
    super(new PlainRequest(ASCII.encode(`X-Forwarded-For: ${displayIp(clientIp)}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: `)));
  }

  /** Origin-form. */
  protected plainTarget(buf: Uint8Array, s: number): boolean {
    return buf[s] === SLASH;
  }

  protected routed(request: PlainRequest): PlainRequest {
    return request;
  }
}

/**
 * The request shortcut of one forward-listener connection: absolute-form http targets
 * (http1-target.ts parseAbsolute). The last origin is kept: a client sends one after another
 * to the same one.
 */
export class PlainForwardRequests extends PlainRequests {
  private authority: Uint8Array = NO_OCTETS;
  private origin: PlainOrigin | null = null;

  constructor() {
    super(new PlainRequest(null));
  }

  protected plainTarget(buf: Uint8Array, s: number, e: number): boolean {
    return hasHttpScheme(buf, s, e);
  }

  protected routed(request: PlainRequest, buf: Uint8Array, targetStart: number, targetEnd: number): PlainRequest | null {
    const a = targetStart + HTTP_PREFIX.byteLength;
    let ae = a;
    while (ae < targetEnd && buf[ae] !== SLASH && buf[ae] !== QUESTION) ae++;
    // OPTIONS to an origin with no path is OPTIONS * there (RFC 9112 §3.2.4): the general path's.
    if (ae === targetEnd && request.method === "OPTIONS") return null;
    let origin = this.origin;
    if (origin === null || !sameBytes(buf, a, ae, this.authority)) {
      // Declined when invalid, userinfo ("@") included: the general path has the error for it.
      const parsed = parseAuthority(latin1(buf, a, ae), HTTP_DEFAULT_PORT);
      if (parsed === null) return null;
      const { host, port } = parsed;
      origin = this.origin = { host, port, key: hostPort(host, port), hostValue: ASCII.encode(hostField(host, port)) };
      this.authority = buf.slice(a, ae);
    }
    return request.setOrigin(origin, ae);
  }
}
