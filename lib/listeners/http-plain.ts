/**
 * Plain heads, rewritten on bytes: the common case of `routeRequest` and of
 * `clientResponseHead` (http-message.ts), done without a string and an object per field.
 * Both run as HeadShortcuts (http1.ts): offered each complete head, they accept it or decline.
 * This file reads the fields and writes the bytes; the two sides are http-plain-request.ts
 * (PlainReverseRequests, PlainForwardRequests, PlainRequest) and http-plain-response.ts
 * (PlainResponses, PlainResponse). Each connection has one head object per direction, filled
 * anew for each plain head: an accepted head costs no allocation.
 *
 * A head is plain when rewriting it only drops whole field lines, replaces one value in place
 * and appends fixed lines:
 * - requests: HTTP/1.1 or HTTP/1.0 (which may not be chunked), not CONNECT, one valid Host, no
 *   Expect; origin-form on a reverse listener, absolute-form with a valid http authority on a
 *   forward one (whose Host value is replaced by it);
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
import { HOP_BY_HOP, VIA_PSEUDONYM, viaField, X_FORWARDED_PREFIX, forwardingNameOctet } from "../http/hop.ts";
import { parseContentLengthAt } from "../protocol/http1-framing.ts";
import { bytesAre, CR, LF, SP } from "../protocol/http1-scan.ts";

// What a field line is to the rewriting, by its name.
export const OTHER = 0;
export const HOST = 1;
export const CONTENT_LENGTH = 2;
export const TRANSFER_ENCODING = 3;
export const CONNECTION = 4;
const EXPECT = 5;
/** Hop-by-hop (hop.ts HOP_BY_HOP) other than Connection: dropped on both sides. */
export const HOP = 6;
/** Forwarded and every X-Forwarded-* name: replaced on reverse requests (hop.ts withForwarded), kept otherwise. */
export const FORWARDED = 7;
export const VIA = 8;
/** Proxy-Connection: dropped like HOP, once its value is plain (it may name fields to drop too). */
const PROXY_CONNECTION = 9;

export const ASCII = new TextEncoder();
export const NO_OCTETS = new Uint8Array(0);

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
for (const name of HOP_BY_HOP) if (name !== "connection" && name !== "proxy-connection") addKind(name, HOP);
addKind("proxy-connection", PROXY_CONNECTION);
addKind("forwarded", FORWARDED);
/** X-Forwarded-* names have any length: matched by their prefix (fieldKind). */
const X_FORWARDED = ASCII.encode(X_FORWARDED_PREFIX);
const X = X_FORWARDED[0]!;

/** Bit 0x20 set: A-Z as a-z (bytesAre, lib/protocol/http1-scan.ts). */
const LOWER = 0x20;

function fieldKind(buf: Uint8Array, s: number, e: number): number {
  const candidates = KINDS_BY_LENGTH[e - s];
  if (candidates !== undefined) {
    for (let i = 0; i < candidates.length; i++) if (bytesAre(buf, s, candidates[i]!.name)) return candidates[i]!.kind;
  }
  // X-Forwarded-* by its prefix; a first octet other than x or X (most names) settles it at once.
  if ((buf[s]! | LOWER) === X && e - s >= X_FORWARDED.length && forwardingPrefix(buf, s)) return FORWARDED;
  return OTHER;
}

/** X-Forwarded- at buf[s..], as hop.ts isForwardingField reads it (`_` for `-` too). */
function forwardingPrefix(buf: Uint8Array, s: number): boolean {
  for (let i = 1; i < X_FORWARDED.length; i++) if (!forwardingNameOctet(buf[s + i]!, X_FORWARDED[i]!)) return false;
  return true;
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
 * One pass over a head's fields: what rewriting it needs, or false when it is not plain. One
 * instance (PLAIN_FIELDS) serves both shortcuts: each reads the results right after `read`,
 * before anything else can run.
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
   * Transfer-Encoding (not both, checked by the caller), plain Connection lines. Each line's
   * kind goes to kinds[j / 4], for keptSize and writeKept: the head object that owns `kinds`
   * rewrites the head without looking at the names again.
   */
  read(buf: Uint8Array, spans: readonly number[], isRequest: boolean, kinds: number[]): boolean {
    this.host = this.via = this.length = -1;
    this.close = this.keepAliveToken = this.chunked = false;
    for (let j = 0; j < spans.length; j += 4) {
      const kind = fieldKind(buf, spans[j]!, spans[j + 1]!);
      kinds[j >> 2] = kind;
      switch (kind) {
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
        case CONNECTION:
          if (!this.connectionLine(buf, spans[j + 2]!, spans[j + 3]!, true)) return false;
          break;
        case PROXY_CONNECTION:
          // A request's Proxy-Connection counts as its Connection does (http1-framing.ts
          // requestKeepAlive); a response's is only removed.
          if (!this.connectionLine(buf, spans[j + 2]!, spans[j + 3]!, isRequest)) return false;
          kinds[j >> 2] = HOP;
          break;
        case EXPECT:
          if (isRequest) return false;
          break;
        case TRANSFER_ENCODING:
          if (this.chunked || !isChunked(buf, spans[j + 2]!, spans[j + 3]!)) return false;
          this.chunked = true;
          break;
        case VIA:
          this.via = j;
          break;
      }
    }
    return true;
  }

  /** A plain Connection (or Proxy-Connection) value; `counts` when it decides keep-alive. */
  private connectionLine(buf: Uint8Array, s: number, e: number, counts: boolean): boolean {
    const option = connectionOption(buf, s, e);
    if (option === NOT_PLAIN) return false;
    if (counts) {
      if (option === CLOSE) this.close = true;
      else this.keepAliveToken = true;
    }
    return true;
  }
}

/** A Transfer-Encoding value that is `chunked` and nothing else. */
function isChunked(buf: Uint8Array, s: number, e: number): boolean {
  return e - s === CHUNKED_TOKEN.length && bytesAre(buf, s, CHUNKED_TOKEN);
}

export const PLAIN_FIELDS = new PlainFields();

// ---- writing ----

export const CRLF_LENGTH = 2;
/** ": " between name and value. */
const SEPARATOR_LENGTH = 2;
const COLON = 0x3a;
export const HTTP11 = ASCII.encode("HTTP/1.1");
/** Via values (hop.ts viaField, RFC 9110 §7.6.3) by the version of the message received, and their lines. */
const VIA_10 = viaField("1.0", VIA_PSEUDONYM);
const VIA_11 = viaField("1.1", VIA_PSEUDONYM);
export const VIA_VALUE = { "1.0": ASCII.encode(VIA_10.value), "1.1": ASCII.encode(VIA_11.value) } as const;
export const VIA_LINE = { "1.0": ASCII.encode(`Via: ${VIA_10.value}\r\n`), "1.1": ASCII.encode(`Via: ${VIA_11.value}\r\n`) } as const;
const VIA_JOIN = ASCII.encode(", ");

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

/** Copies shorter than this run as a loop here: a native copy costs more to call (bench/heads.ts). */
const NATIVE_COPY_BYTES = 32;

export function copy(out: Uint8Array, p: number, buf: Uint8Array, s: number, e: number): number {
  for (let i = s; i < e; i++) out[p++] = buf[i]!;
  return p;
}

// Buffer.prototype.copy copies a range natively without a view of it (Bun and Deno's node:buffer).
const bufferCopy = (Buffer.prototype as unknown as { copy(this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number): number }).copy;

/** source[start, end) into out at p. */
export function copyRange(source: Uint8Array, start: number, end: number, out: Uint8Array, p: number): void {
  bufferCopy.call(source, out, p, start, end);
}

export function put(out: Uint8Array, p: number, bytes: Uint8Array): number {
  const n = bytes.byteLength;
  if (n >= NATIVE_COPY_BYTES) {
    out.set(bytes, p);
    return p + n;
  }
  for (let i = 0; i < n; i++) out[p++] = bytes[i]!;
  return p;
}

export function crlf(out: Uint8Array, p: number): number {
  out[p] = CR;
  out[p + 1] = LF;
  return p + CRLF_LENGTH;
}

/**
 * Bytes of the kept field lines, as the serializer writes them ("name: value" CRLF), with Via's
 * suffix; the line at offset `replaced` of spans (-1: none) has `replacement` for its value.
 * `kinds`: what PlainFields.read found for these spans.
 */
export function keptSize(spans: readonly number[], kinds: readonly number[], keep: (kind: number) => boolean, via: number, viaValue: Uint8Array, replaced: number, replacement: Uint8Array): number {
  let size = 0;
  for (let j = 0; j < spans.length; j += 4) {
    if (!keep(kinds[j >> 2]!)) continue;
    const value = j === replaced ? replacement.byteLength : spans[j + 3]! - spans[j + 2]!;
    size += spans[j + 1]! - spans[j]! + SEPARATOR_LENGTH + value + CRLF_LENGTH;
    if (j === via) size += spans[j + 3]! > spans[j + 2]! ? VIA_JOIN.byteLength + viaValue.byteLength : viaValue.byteLength;
  }
  return size;
}

/**
 * Writes the kept field lines; the last Via line gets this proxy appended (hop.ts withVia), and
 * the line at `replaced` gets `replacement` for its value, in place (hop.ts setHeader).
 * A line received exactly as the serializer writes it (`name: value` CRLF: one SP after the
 * colon, no trailing whitespace) is its own bytes, and consecutive ones are one range of the
 * head: such a run is copied at once (most of a browser's head is one or two runs).
 */
export function writeKept(
  out: Uint8Array,
  p: number,
  buf: Uint8Array,
  spans: readonly number[],
  kinds: readonly number[],
  keep: (kind: number) => boolean,
  via: number,
  viaValue: Uint8Array,
  replaced: number,
  replacement: Uint8Array,
): number {
  // The run of received lines not yet written: buf[runStart, runEnd).
  let runStart = 0;
  let runEnd = 0;
  for (let j = 0; j < spans.length; j += 4) {
    if (!keep(kinds[j >> 2]!)) continue;
    const nameStart = spans[j]!;
    const nameEnd = spans[j + 1]!;
    const valueEnd = spans[j + 3]!;
    if (j !== replaced && j !== via && spans[j + 2] === nameEnd + SEPARATOR_LENGTH && buf[nameEnd + 1] === SP && buf[valueEnd] === CR) {
      // Canonical (the colon at nameEnd and the LF after the CR are the scanner's): joins the run.
      if (nameStart !== runEnd) {
        p = flush(out, p, buf, runStart, runEnd);
        runStart = nameStart;
      }
      runEnd = valueEnd + CRLF_LENGTH;
      continue;
    }
    p = flush(out, p, buf, runStart, runEnd);
    runStart = runEnd = 0;
    p = copy(out, p, buf, nameStart, nameEnd);
    out[p++] = COLON;
    out[p++] = SP;
    if (j === replaced) {
      p = put(out, p, replacement);
      p = crlf(out, p);
      continue;
    }
    p = copy(out, p, buf, spans[j + 2]!, valueEnd);
    if (j === via) {
      if (valueEnd > spans[j + 2]!) p = put(out, p, VIA_JOIN);
      p = put(out, p, viaValue);
    }
    p = crlf(out, p);
  }
  return flush(out, p, buf, runStart, runEnd);
}

/** buf[s, e) into out at p: natively when long enough to pay for the call. */
function flush(out: Uint8Array, p: number, buf: Uint8Array, s: number, e: number): number {
  if (e - s < NATIVE_COPY_BYTES) return copy(out, p, buf, s, e);
  copyRange(buf, s, e, out, p);
  return p + e - s;
}
