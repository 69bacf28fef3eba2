/**
 * Plain heads, rewritten on bytes: the common case of `routeRequest` on a reverse listener and
 * of `clientResponseHead` (http-message.ts), done without a string and an object per field.
 * Both run as HeadShortcuts (http1.ts): offered each complete head, they accept it or decline.
 *
 * A head is plain when rewriting it only drops whole field lines and appends fixed ones:
 * - requests: HTTP/1.1, origin-form, not CONNECT, one valid Host, no Expect;
 * - responses: a final status (not 1xx), nothing framing a 204;
 * - both: either at most one valid Content-Length or one `Transfer-Encoding: chunked` line (any
 *   case), not both (HTTP/1.1 only for chunked); every Connection line is exactly `keep-alive`
 *   or `close` (any case), so no field is named for removal and no upgrade is asked for.
 * A plain chunked response to an HTTP/1.0 client is still written by the general path, which
 * removes the coding (http-response.ts de-chunks the body).
 * Anything else is declined, and the general path parses, checks and rewrites the head as
 * before. What an accepted head yields is what the general path yields: the same head (its
 * headers and target built only when read) and the same bytes for the next hop, byte for byte
 * (tests/http-plain.test.ts compares the two on generated and mutated heads). Errors are the
 * general path's too: the shortcut runs the same start-line and field-line checks first, and
 * declines rather than throws for everything the general build checks after them.
 *
 * Why: the general path builds two strings and an object per field, a header array per
 * rewriting step and a string per added field; in the proxy that allocation, not the parsing,
 * was most of what HTTP cost over a TCP relay (bench/RESULTS.md).
 */
import { Buffer } from "node:buffer";
import { displayIp, HOP_BY_HOP, VIA_PSEUDONYM } from "../http/hop.ts";
import { type BodyFraming, type Header, type HeadScan, type HeadShortcut, type RequestHead, REASON_START, type ResponseHead, scanStatusLine, statusLineVersion } from "../protocol/http1.ts";
import { CHUNKED_BODY, CLOSE_BODY, NO_BODY, noBodyStatus, parseContentLengthAt } from "../protocol/http1-framing.ts";
import { CR, headersFromSpans, LF, latin1, scanFieldLines, SP } from "../protocol/http1-scan.ts";
import { isValidHostField, scanRequestLine } from "../protocol/http1-target.ts";

// What a field line is to the rewriting, by its name.
const OTHER = 0;
const HOST = 1;
const CONTENT_LENGTH = 2;
const TRANSFER_ENCODING = 3;
const CONNECTION = 4;
const EXPECT = 5;
/** Hop-by-hop (hop.ts HOP_BY_HOP) other than Connection: dropped on both sides. */
const HOP = 6;
/** Forwarded and X-Forwarded-*: replaced on requests (hop.ts withForwarded), kept on responses. */
const FORWARDED = 7;
const VIA = 8;

const ASCII = new TextEncoder();
const NO_OCTETS = new Uint8Array(0);

/** Lower-case names by length: most fields have a length none of them has, and cost one read. */
const KINDS_BY_LENGTH: { readonly name: Uint8Array; readonly kind: number }[][] = [];
function addKind(name: string, kind: number): void {
  (KINDS_BY_LENGTH[name.length] ??= []).push({ name: ASCII.encode(name), kind });
}
addKind("host", HOST);
addKind("content-length", CONTENT_LENGTH);
addKind("transfer-encoding", TRANSFER_ENCODING);
addKind("connection", CONNECTION);
addKind("expect", EXPECT);
addKind("via", VIA);
for (const name of HOP_BY_HOP) if (name !== "connection") addKind(name, HOP);
for (const name of ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]) addKind(name, FORWARDED);

const LOWER = 0x20;

/**
 * ASCII case-insensitive: buf[s, s + lower.length) against `lower`, which holds only a-z and "-".
 * Setting bit 0x20 maps only A-Z onto a-z, and nothing but "-" (or CR, never in a name or
 * value) onto "-".
 */
function bytesAre(buf: Uint8Array, s: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[s + i]! | LOWER) !== lower[i]) return false;
  return true;
}

function fieldKind(buf: Uint8Array, s: number, e: number): number {
  const candidates = KINDS_BY_LENGTH[e - s];
  if (candidates === undefined) return OTHER;
  for (let i = 0; i < candidates.length; i++) if (bytesAre(buf, s, candidates[i]!.name)) return candidates[i]!.kind;
  return OTHER;
}

const KEEP_ALIVE_TOKEN = ASCII.encode("keep-alive");
const CLOSE_TOKEN = ASCII.encode("close");
const CHUNKED_TOKEN = ASCII.encode("chunked");
/** What one Connection line says, when it is plain. */
const NOT_PLAIN = 0;
const KEEP_ALIVE = 1;
const CLOSE = 2;

function connectionOption(buf: Uint8Array, s: number, e: number): number {
  if (e - s === KEEP_ALIVE_TOKEN.length && bytesAre(buf, s, KEEP_ALIVE_TOKEN)) return KEEP_ALIVE;
  if (e - s === CLOSE_TOKEN.length && bytesAre(buf, s, CLOSE_TOKEN)) return CLOSE;
  return NOT_PLAIN;
}

/** A Content-Length value, or -1 when it is not one valid number (the general path decides). */
function contentLength(buf: Uint8Array, s: number, e: number): number {
  return parseContentLengthAt(buf, s, e) ?? -1;
}

/**
 * One pass over a head's fields: what rewriting it needs, or false when it is not plain. Each
 * shortcut owns one and reads its fields right after `read`.
 */
class PlainFields {
  /** Offset in spans of the Host line, of the last Via line; -1 when none. */
  host = -1;
  via = -1;
  /** The Content-Length, -1 when none. */
  length = -1;
  close = false;
  keepAliveToken = false;
  /** One `Transfer-Encoding: chunked` line. */
  chunked = false;

  /**
   * Requests: Host once, no Expect. Both: one valid Content-Length or one chunked
   * Transfer-Encoding (not both, checked by the caller), plain Connection lines.
   */
  read(buf: Uint8Array, spans: readonly number[], isRequest: boolean): boolean {
    this.host = this.via = this.length = -1;
    this.close = this.keepAliveToken = this.chunked = false;
    for (let j = 0; j < spans.length; j += 4) {
      switch (fieldKind(buf, spans[j]!, spans[j + 1]!)) {
        case HOST:
          if (!isRequest) break;
          if (this.host >= 0) return false;
          this.host = j;
          break;
        case CONTENT_LENGTH:
          if (this.length >= 0) return false;
          this.length = contentLength(buf, spans[j + 2]!, spans[j + 3]!);
          if (this.length < 0) return false;
          break;
        case CONNECTION: {
          const option = connectionOption(buf, spans[j + 2]!, spans[j + 3]!);
          if (option === NOT_PLAIN) return false;
          if (option === CLOSE) this.close = true;
          else this.keepAliveToken = true;
          break;
        }
        case EXPECT:
          if (isRequest) return false;
          break;
        case TRANSFER_ENCODING: {
          const vs = spans[j + 2]!;
          const ve = spans[j + 3]!;
          if (this.chunked || ve - vs !== CHUNKED_TOKEN.length || !bytesAre(buf, vs, CHUNKED_TOKEN)) return false;
          this.chunked = true;
          break;
        }
        case VIA:
          this.via = j;
          break;
      }
    }
    return true;
  }
}

// ---- writing ----

const CRLF_LENGTH = 2;
/** ": " between name and value. */
const SEPARATOR_LENGTH = 2;
const COLON = 0x3a;
const HTTP11 = ASCII.encode("HTTP/1.1");
const VIA_NAME_LENGTH = 3;
/** Via values (RFC 9110 §7.6.3) by the version of the message received, and their lines. */
const VIA_VALUE = { "1.0": ASCII.encode(`1.0 ${VIA_PSEUDONYM}`), "1.1": ASCII.encode(`1.1 ${VIA_PSEUDONYM}`) } as const;
const VIA_LINE = { "1.0": ASCII.encode(`Via: 1.0 ${VIA_PSEUDONYM}\r\n`), "1.1": ASCII.encode(`Via: 1.1 ${VIA_PSEUDONYM}\r\n`) } as const;
const VIA_JOIN = ASCII.encode(", ");
const CONNECTION_CLOSE_LINE = ASCII.encode("Connection: close\r\n");
const CONNECTION_KEEP_ALIVE_LINE = ASCII.encode("Connection: keep-alive\r\n");

/**
 * Plain heads are written here right before they are sent with Conn.writeFrom, which copies what
 * it cannot send at once: the buffer is free again when the write returns, so one serves every
 * connection (JavaScript runs one write at a time) and no head needs a buffer of its own. 16 KiB
 * holds a head with the body bytes of a small response; larger ones get their own buffer.
 */
const OUTPUT_BYTES = 16 * 1024;
let output: Uint8Array | null = null;

/** A buffer of at least `size` bytes, to be filled and handed to Conn.writeFrom before anything else runs. */
export function plainOutput(size: number): Uint8Array {
  if (size > OUTPUT_BYTES) return new Uint8Array(size);
  return (output ??= new Uint8Array(OUTPUT_BYTES));
}

function copy(out: Uint8Array, p: number, buf: Uint8Array, s: number, e: number): number {
  for (let i = s; i < e; i++) out[p++] = buf[i]!;
  return p;
}

// Buffer.prototype.copy copies a range natively without a view of it (Bun and Deno's node:buffer).
const bufferCopy = (Buffer.prototype as unknown as { copy(this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number): number }).copy;

/** source[start, end) into out at p. */
function copyRange(source: Uint8Array, start: number, end: number, out: Uint8Array, p: number): void {
  bufferCopy.call(source, out, p, start, end);
}

function put(out: Uint8Array, p: number, bytes: Uint8Array): number {
  out.set(bytes, p);
  return p + bytes.byteLength;
}

function crlf(out: Uint8Array, p: number): number {
  out[p] = CR;
  out[p + 1] = LF;
  return p + CRLF_LENGTH;
}

/** Bytes of the kept field lines, as the serializer writes them ("name: value" CRLF), with Via's suffix. */
function keptSize(buf: Uint8Array, spans: readonly number[], keep: (kind: number) => boolean, via: number, viaValue: Uint8Array): number {
  let size = 0;
  for (let j = 0; j < spans.length; j += 4) {
    if (!keep(fieldKind(buf, spans[j]!, spans[j + 1]!))) continue;
    size += spans[j + 1]! - spans[j]! + SEPARATOR_LENGTH + spans[j + 3]! - spans[j + 2]! + CRLF_LENGTH;
    if (j === via) size += spans[j + 3]! > spans[j + 2]! ? VIA_JOIN.byteLength + viaValue.byteLength : viaValue.byteLength;
  }
  return size;
}

/** Writes the kept field lines; the last Via line gets this proxy appended (hop.ts withVia). */
function writeKept(out: Uint8Array, p: number, buf: Uint8Array, spans: readonly number[], keep: (kind: number) => boolean, via: number, viaValue: Uint8Array): number {
  for (let j = 0; j < spans.length; j += 4) {
    if (!keep(fieldKind(buf, spans[j]!, spans[j + 1]!))) continue;
    p = copy(out, p, buf, spans[j]!, spans[j + 1]!);
    out[p++] = COLON;
    out[p++] = SP;
    p = copy(out, p, buf, spans[j + 2]!, spans[j + 3]!);
    if (j === via) {
      if (spans[j + 3]! > spans[j + 2]!) p = put(out, p, VIA_JOIN);
      p = put(out, p, viaValue);
    }
    p = crlf(out, p);
  }
  return p;
}

// ---- requests ----

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
 */
export class PlainRequest implements RequestHead {
  readonly form = "origin";
  readonly version = "1.1";
  readonly url = undefined;
  readonly authority = undefined;
  readonly expectContinue = false;
  readonly upgrade = null;
  #target: string | null = null;
  #headers: Header[] | null = null;

  constructor(
    readonly method: string,
    readonly framing: BodyFraming,
    readonly keepAlive: boolean,
    private readonly buf: Uint8Array,
    private readonly start: number,
    private readonly end: number,
    private readonly targetStart: number,
    private readonly targetEnd: number,
    private readonly spans: readonly number[],
    /** The Host value, and the offset in spans of the last Via line (-1: none). */
    private readonly hostStart: number,
    private readonly hostEnd: number,
    private readonly via: number,
    /** The connection's X-Forwarded-For and -Proto lines and X-Forwarded-Host's name. */
    private readonly forwarded: Uint8Array,
  ) {}

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
    const added = this.forwarded.byteLength + this.hostEnd - this.hostStart + CRLF_LENGTH + (this.via < 0 ? VIA_LINE["1.1"].byteLength : 0);
    return startLine + keptSize(this.buf, this.spans, keptOnRequest, this.via, VIA_VALUE["1.1"]) + added + CRLF_LENGTH;
  }

  /**
   * Writes the head for the workload into out from 0 and returns its length: method SP target
   * SP HTTP/1.1 CRLF, the kept fields, X-Forwarded-*, Via unless appended, CRLF.
   */
  writeUpstreamHead(out: Uint8Array): number {
    const { buf, spans, via } = this;
    let p = copy(out, 0, buf, this.start, this.targetEnd + 1);
    p = crlf(out, put(out, p, HTTP11));
    p = writeKept(out, p, buf, spans, keptOnRequest, via, VIA_VALUE["1.1"]);
    p = put(out, p, this.forwarded);
    p = crlf(out, copy(out, p, buf, this.hostStart, this.hostEnd));
    if (via < 0) p = put(out, p, VIA_LINE["1.1"]);
    return crlf(out, p);
  }
}

/**
 * The request shortcut of one reverse-listener connection: the client's address is fixed for
 * the connection, so its X-Forwarded-For and -Proto lines are written once.
 */
export class PlainReverseRequests implements HeadShortcut<RequestHead> {
  /** "X-Forwarded-For: ip" CRLF "X-Forwarded-Proto: http" CRLF "X-Forwarded-Host: " (hop.ts withForwarded). */
  private readonly forwarded: Uint8Array;
  private readonly fields = new PlainFields();
  /** The last Host value found valid on this connection: clients send the same one each time. */
  private validHost: Uint8Array = NO_OCTETS;

  constructor(clientIp: string) {
    this.forwarded = ASCII.encode(`X-Forwarded-For: ${displayIp(clientIp)}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: `);
  }

  take(buf: Uint8Array, scan: HeadScan, end: number): PlainRequest | null {
    const s = scan.startLine;
    // The general build's first two checks, in its order: their errors are its errors.
    const line = scanRequestLine(buf, s, scan.startLineEnd - 2);
    const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "protocol");
    if (line.version !== "1.1" || buf[line.targetStart] !== SLASH) return null;
    if (sameBytes(buf, s, line.methodEnd, CONNECT_METHOD)) return null;
    const fields = this.fields;
    if (!fields.read(buf, spans, true) || fields.host < 0 || (fields.chunked && fields.length >= 0)) return null;
    const { host, via, length } = fields;
    const hostStart = spans[host + 2]!;
    const hostEnd = spans[host + 3]!;
    if (!sameBytes(buf, hostStart, hostEnd, this.validHost)) {
      if (!isValidHostField(latin1(buf, hostStart, hostEnd))) return null;
      this.validHost = buf.slice(hostStart, hostEnd);
    }

    const framing: BodyFraming = fields.chunked ? CHUNKED_BODY : length < 0 ? NO_BODY : { kind: "length", length };
    const method = methodName(buf, s, line.methodEnd);
    return new PlainRequest(method, framing, !fields.close, buf, s, end, line.targetStart, line.targetEnd, spans, hostStart, hostEnd, via, this.forwarded);
  }
}

// ---- responses ----

/** Dropped from a response: the hop-by-hop fields, Connection among them. */
const keptOnResponse = (kind: number): boolean => kind !== HOP && kind !== CONNECTION;

/** A response head the shortcut accepted; `clientHead` is clientResponseHead's byte twin. */
export class PlainResponse implements ResponseHead {
  #reason: string | null = null;
  #headers: Header[] | null = null;

  constructor(
    readonly version: "1.0" | "1.1",
    readonly status: number,
    readonly keepAlive: boolean,
    readonly headerFraming: BodyFraming,
    private readonly buf: Uint8Array,
    private readonly start: number,
    /** End of the status-line (its CR). */
    private readonly lineEnd: number,
    private readonly end: number,
    private readonly spans: readonly number[],
    private readonly via: number,
    /** The head names the chunked coding (whether or not a body follows: HEAD, 304). */
    private readonly chunked: boolean,
  ) {}

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
    return line + keptSize(this.buf, this.spans, keptOnResponse, this.via, VIA_VALUE[this.version]) + added + CRLF_LENGTH + bodyLength;
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
    p = writeKept(out, p, buf, spans, keptOnResponse, via, VIA_VALUE[this.version]);
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

const RESPONSE_FIELDS = new PlainFields();

/** The response shortcut: nothing per connection, one for every reader (JS runs one take at a time). */
export const PLAIN_RESPONSES: HeadShortcut<ResponseHead> = {
  take(buf: Uint8Array, scan: HeadScan, end: number): PlainResponse | null {
    const s = scan.startLine;
    const lineEnd = scan.startLineEnd - 2;
    // The general build's first two checks, in its order: their errors are its errors.
    const status = scanStatusLine(buf, s, lineEnd);
    const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "upstreamProtocol");
    if (status < 200) return null;
    const fields = RESPONSE_FIELDS;
    if (!fields.read(buf, spans, false)) return null;
    const { length, via } = fields;
    const version = statusLineVersion(buf, s);
    // RFC 9112 §6.1-§6.3: the general path rejects chunked in HTTP/1.0 and drops Content-Length
    // next to it; RFC 9110 §8.6: it removes a 204's framing fields.
    if (fields.chunked && (version === "1.0" || length >= 0)) return null;
    if (status === 204 && (length >= 0 || fields.chunked)) return null;
    // RFC 9112 §9.3 (http1-framing.ts keepAliveOf).
    const keepAlive = !fields.close && (version === "1.1" || fields.keepAliveToken);
    const framing: BodyFraming = noBodyStatus(status) ? NO_BODY : fields.chunked ? CHUNKED_BODY : length >= 0 ? { kind: "length", length } : CLOSE_BODY;
    return new PlainResponse(version, status, keepAlive, framing, buf, s, lineEnd, end, spans, via, fields.chunked);
  },
};
