/**
 * The plain response shortcut (http-plain.ts says what plain means and why): a plain response's
 * head for the client is written straight from the received octets, byte for byte what
 * clientResponseHead (http-message.ts) would write.
 */
import type { BodyFraming, Header, HeadScan, HeadShortcut, ResponseHead } from "../protocol/http1.ts";
import { REASON_START, scanStatusLine, statusLineVersion } from "../protocol/http1.ts";
import { CHUNKED_BODY, CLOSE_BODY, NO_BODY, noBodyStatus } from "../protocol/http1-framing.ts";
import { headersFromSpans, latin1, scanFieldLines, SP } from "../protocol/http1-scan.ts";
import { ASCII, CONNECTION, copy, copyRange, crlf, CRLF_LENGTH, HOP, HTTP11, keptSize, NO_OCTETS, PLAIN_FIELDS, put, VIA_LINE, VIA_VALUE, writeKept } from "./http-plain.ts";

const CONNECTION_CLOSE_LINE = ASCII.encode("Connection: close\r\n");
const CONNECTION_KEEP_ALIVE_LINE = ASCII.encode("Connection: keep-alive\r\n");

/** Dropped from a response: the hop-by-hop fields, Connection among them. */
const keptOnResponse = (kind: number): boolean => kind !== HOP && kind !== CONNECTION;

/**
 * A response head the shortcut accepted; `clientHead` is clientResponseHead's byte twin.
 *
 * One per response reader (so per connection), filled anew for each plain response (`set`), as
 * PlainRequest is: the reader takes the next head only once the last response is over.
 */
export class PlainResponse implements ResponseHead {
  version: "1.0" | "1.1" = "1.1";
  status = 200;
  keepAlive = true;
  headerFraming: BodyFraming = NO_BODY;
  #reason: string | null = null;
  #headers: Header[] | null = null;
  private buf: Uint8Array = NO_OCTETS;
  private start = 0;
  /** End of the status-line (its CR). */
  private lineEnd = 0;
  private end = 0;
  private spans: readonly number[] = [];
  /** Each field line's kind (PlainFields.read), filled by the shortcut before `set`. */
  readonly kinds: number[] = [];
  private via = -1;
  /** The head names the chunked coding (whether or not a body follows: HEAD, 304). */
  private chunked = false;
  private readonly lengthFraming = { kind: "length" as const, length: 0 };

  /** This head is now buf[start, end); `length` < 0: no Content-Length. */
  set(version: "1.0" | "1.1", status: number, keepAlive: boolean, chunked: boolean, length: number, buf: Uint8Array, start: number, lineEnd: number, end: number, spans: readonly number[], via: number): this {
    this.version = version;
    this.status = status;
    this.keepAlive = keepAlive;
    if (noBodyStatus(status)) this.headerFraming = NO_BODY;
    else if (chunked) this.headerFraming = CHUNKED_BODY;
    else if (length < 0) this.headerFraming = CLOSE_BODY;
    else {
      this.lengthFraming.length = length;
      this.headerFraming = this.lengthFraming;
    }
    this.#reason = null;
    this.#headers = null;
    this.buf = buf;
    this.start = start;
    this.lineEnd = lineEnd;
    this.end = end;
    this.spans = spans;
    this.via = via;
    this.chunked = chunked;
    return this;
  }

  get reason(): string {
    const reasonStart = this.start + REASON_START;
    return (this.#reason ??= this.lineEnd > reasonStart ? latin1(this.buf, reasonStart, this.lineEnd) : "");
  }

  get headers(): Header[] {
    return (this.#headers ??= headersFromSpans(latin1(this.buf, this.start, this.end), this.start, this.spans));
  }

  /**
   * The head for the client, then body[bodyStart, bodyEnd), in a buffer of its own: hop-by-hop
   * dropped, Via added, our Connection decision. Null for a chunked head to an HTTP/1.0
   * client: the general path removes the coding.
   */
  clientHead(clientVersion: "1.0" | "1.1", keepAlive: boolean, body: Uint8Array = NO_OCTETS, bodyStart = 0, bodyEnd = body.byteLength): Uint8Array | null {
    const size = this.clientHeadSize(clientVersion, keepAlive, bodyEnd - bodyStart);
    if (size < 0) return null;
    const out = new Uint8Array(size);
    this.writeClientHead(out, clientVersion, keepAlive, body, bodyStart, bodyEnd);
    return out;
  }

  /** clientHead's size with `bodyLength` body bytes, or -1 where clientHead is null. */
  clientHeadSize(clientVersion: "1.0" | "1.1", keepAlive: boolean, bodyLength: number): number {
    if (this.chunked && clientVersion === "1.0") return -1;
    const connection = connectionLine(clientVersion, keepAlive);
    const added = (this.via < 0 ? VIA_LINE[this.version].byteLength : 0) + (connection ? connection.byteLength : 0);
    // "HTTP/1.1" SP status SP reason CRLF: the received line with our version.
    const line = REASON_START + Math.max(this.lineEnd - this.start - REASON_START, 0) + CRLF_LENGTH;
    return line + keptSize(this.spans, this.kinds, keptOnResponse, this.via, VIA_VALUE[this.version], -1, NO_OCTETS) + added + CRLF_LENGTH + bodyLength;
  }

  /** Writes clientHead's bytes into out from 0 (room for clientHeadSize) and returns their length. */
  writeClientHead(out: Uint8Array, clientVersion: "1.0" | "1.1", keepAlive: boolean, body: Uint8Array, bodyStart: number, bodyEnd: number): number {
    const { buf, start, spans, via } = this;
    // The SP before the reason is always written (the serializer's form), also where the line had none.
    const reasonStart = start + REASON_START;
    const reasonEnd = Math.max(this.lineEnd, reasonStart);
    let p = put(out, 0, HTTP11);
    p = copy(out, p, buf, start + HTTP11.byteLength, reasonStart - 1);
    out[p++] = SP;
    p = crlf(out, copy(out, p, buf, reasonStart, reasonEnd));
    p = writeKept(out, p, buf, spans, this.kinds, keptOnResponse, via, VIA_VALUE[this.version], -1, NO_OCTETS);
    if (via < 0) p = put(out, p, VIA_LINE[this.version]);
    const connection = connectionLine(clientVersion, keepAlive);
    if (connection) p = put(out, p, connection);
    p = crlf(out, p);
    if (bodyEnd > bodyStart) copyRange(body, bodyStart, bodyEnd, out, p);
    return p + bodyEnd - bodyStart;
  }
}

/** Our Connection decision for the client (http-message.ts clientResponseHead), if a line is needed. */
function connectionLine(clientVersion: "1.0" | "1.1", keepAlive: boolean): Uint8Array | null {
  return !keepAlive ? CONNECTION_CLOSE_LINE : clientVersion === "1.0" ? CONNECTION_KEEP_ALIVE_LINE : null;
}

/** The response shortcut of one reader (http-response.ts), with its one PlainResponse. */
export class PlainResponses implements HeadShortcut<ResponseHead> {
  private readonly response = new PlainResponse();

  take(buf: Uint8Array, scan: HeadScan, end: number): PlainResponse | null {
    const s = scan.startLine;
    const lineEnd = scan.startLineEnd - 2;
    // The general build's first two checks, in its order: their errors are its errors.
    const status = scanStatusLine(buf, s, lineEnd);
    const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "upstreamProtocol", scan.spans);
    if (status < 200) return null;
    const fields = PLAIN_FIELDS;
    if (!fields.read(buf, spans, false, this.response.kinds)) return null;
    const { length, via } = fields;
    const version = statusLineVersion(buf, s);
    // RFC 9112 §6.1-§6.3: the general path rejects chunked in HTTP/1.0 and drops Content-Length
    // next to it; RFC 9110 §8.6: it removes a 204's framing fields.
    if (fields.chunked && (version === "1.0" || length >= 0)) return null;
    if (status === 204 && (length >= 0 || fields.chunked)) return null;
    // RFC 9112 §9.3 (http1-framing.ts keepAliveOf).
    const keepAlive = !fields.close && (version === "1.1" || fields.keepAliveToken);
    return this.response.set(version, status, keepAlive, fields.chunked, length, buf, s, lineEnd, end, spans, via);
  }
}
