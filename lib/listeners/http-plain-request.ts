/**
 * The plain request shortcut (http-plain.ts says what plain means and why): on a reverse
 * listener, a plain request is written for the workload straight from the received octets,
 * byte for byte what routeRequest (http-message.ts) would send.
 */
import { displayIp } from "../http/hop.ts";
import type { BodyFraming, Header, HeadScan, HeadShortcut, RequestHead } from "../protocol/http1.ts";
import { CHUNKED_BODY, NO_BODY } from "../protocol/http1-framing.ts";
import { headersFromSpans, latin1, scanFieldLines } from "../protocol/http1-scan.ts";
import { isValidHostField, scanRequestLine } from "../protocol/http1-target.ts";
import {
  ASCII,
  CONTENT_LENGTH,
  copy,
  crlf,
  CRLF_LENGTH,
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

/** Kept on a request: Host, the framing fields, Via and every field the rewriting does not touch. */
const keptOnRequest = (kind: number): boolean => kind === OTHER || kind === HOST || kind === CONTENT_LENGTH || kind === TRANSFER_ENCODING || kind === VIA;

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"].map((m) => ({ name: m, bytes: ASCII.encode(m) }));
const CONNECT_METHOD = ASCII.encode("CONNECT");
const SLASH = 0x2f;

/** buf[s, e) is exactly `bytes` (methods are case-sensitive, RFC 9110 §9.1). */
function sameBytes(buf: Uint8Array, s: number, e: number, bytes: Uint8Array): boolean {
  if (e - s !== bytes.byteLength) return false;
  for (let i = 0; i < bytes.byteLength; i++) if (buf[s + i] !== bytes[i]) return false;
  return true;
}

/** The common methods as shared strings; others are sliced. */
function methodName(buf: Uint8Array, s: number, e: number): string {
  for (const m of METHODS) if (sameBytes(buf, s, e, m.bytes)) return m.name;
  return latin1(buf, s, e);
}

/**
 * A request head the shortcut accepted. What routeRequest would send the workload is written
 * when it is sent (writeUpstreamHead, into plainOutput), or made by `upstreamHead`.
 *
 * One per connection, filled anew for each plain request (`set`): a head on bytes then costs no
 * allocation. The session parses the next request only once the exchange of the last one is
 * over, and nothing keeps a head past its exchange; its spans (the request HeadScan's) and its
 * length framing are renewed with it.
 */
export class PlainRequest implements RequestHead {
  readonly form = "origin";
  readonly url = undefined;
  readonly authority = undefined;
  readonly expectContinue = false;
  readonly upgrade = null;
  method = "";
  version: "1.0" | "1.1" = "1.1";
  framing: BodyFraming = NO_BODY;
  keepAlive = true;
  #target: string | null = null;
  #headers: Header[] | null = null;
  private buf: Uint8Array = NO_OCTETS;
  private start = 0;
  private end = 0;
  private targetStart = 0;
  private targetEnd = 0;
  private spans: readonly number[] = [];
  /** The Host value, and the offset in spans of the last Via line (-1: none). */
  private hostStart = 0;
  private hostEnd = 0;
  private via = -1;
  private readonly lengthFraming = { kind: "length" as const, length: 0 };

  /** `forwarded`: the connection's X-Forwarded-For and -Proto lines and X-Forwarded-Host's name. */
  constructor(private readonly forwarded: Uint8Array) {}

  /** This head is now buf[start, end); `length` < 0: no Content-Length. */
  set(method: string, version: "1.0" | "1.1", chunked: boolean, length: number, keepAlive: boolean, buf: Uint8Array, start: number, end: number, targetStart: number, targetEnd: number, spans: readonly number[], hostStart: number, hostEnd: number, via: number): this {
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
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.targetStart = targetStart;
    this.targetEnd = targetEnd;
    this.spans = spans;
    this.hostStart = hostStart;
    this.hostEnd = hostEnd;
    this.via = via;
    return this;
  }

  get target(): string {
    return (this.#target ??= latin1(this.buf, this.targetStart, this.targetEnd));
  }

  get headers(): Header[] {
    return (this.#headers ??= headersFromSpans(latin1(this.buf, this.start, this.end), this.start, this.spans));
  }

  /** The head for the workload in a buffer of its own. */
  get upstreamHead(): Uint8Array {
    const out = new Uint8Array(this.upstreamHeadSize());
    this.writeUpstreamHead(out);
    return out;
  }

  upstreamHeadSize(): number {
    const startLine = this.targetEnd - this.start + 1 + HTTP11.byteLength + CRLF_LENGTH;
    const added = this.forwarded.byteLength + this.hostEnd - this.hostStart + CRLF_LENGTH + (this.via < 0 ? VIA_LINE[this.version].byteLength : 0);
    return startLine + keptSize(this.buf, this.spans, keptOnRequest, this.via, VIA_VALUE[this.version]) + added + CRLF_LENGTH;
  }

  /**
   * Writes the head for the workload into out from 0 and returns its length: method SP target
   * SP HTTP/1.1 CRLF, the kept fields, X-Forwarded-*, Via unless appended, CRLF.
   */
  writeUpstreamHead(out: Uint8Array): number {
    const { buf, spans, via } = this;
    let p = copy(out, 0, buf, this.start, this.targetEnd + 1);
    p = crlf(out, put(out, p, HTTP11));
    p = writeKept(out, p, buf, spans, keptOnRequest, via, VIA_VALUE[this.version]);
    p = put(out, p, this.forwarded);
    p = crlf(out, copy(out, p, buf, this.hostStart, this.hostEnd));
    if (via < 0) p = put(out, p, VIA_LINE[this.version]);
    return crlf(out, p);
  }
}

/**
 * The request shortcut of one reverse-listener connection: the client's address is fixed for
 * the connection, so its X-Forwarded-For and -Proto lines are written once.
 */
export class PlainReverseRequests implements HeadShortcut<RequestHead> {
  /** The last Host value found valid on this connection: clients send the same one each time. */
  private validHost: Uint8Array = NO_OCTETS;
  /** The connection's one plain request head (see PlainRequest). */
  private readonly request: PlainRequest;

  constructor(clientIp: string) {
    // "X-Forwarded-For: ip" CRLF "X-Forwarded-Proto: http" CRLF "X-Forwarded-Host: " (hop.ts withForwarded).
    this.request = new PlainRequest(ASCII.encode(`X-Forwarded-For: ${displayIp(clientIp)}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: `));
  }

  take(buf: Uint8Array, scan: HeadScan, end: number): PlainRequest | null {
    const s = scan.startLine;
    // The general build's first two checks, in its order: their errors are its errors.
    const line = scanRequestLine(buf, s, scan.startLineEnd - 2);
    const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "protocol", scan.spans);
    const version = line.version;
    if (buf[line.targetStart] !== SLASH) return null;
    if (sameBytes(buf, s, line.methodEnd, CONNECT_METHOD)) return null;
    const fields = PLAIN_FIELDS;
    if (!fields.read(buf, spans, true) || fields.host < 0 || (fields.chunked && fields.length >= 0)) return null;
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
    // RFC 9112 §9.3 (http1-framing.ts keepAliveOf): HTTP/1.0 stays open only when asked to.
    const keepAlive = !fields.close && (version === "1.1" || fields.keepAliveToken);
    return this.request.set(method, version, fields.chunked, length, keepAlive, buf, s, end, line.targetStart, line.targetEnd, spans, hostStart, hostEnd, via);
  }
}
