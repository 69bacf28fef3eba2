/**
 * HTTP/1.x message head scanning and field-line syntax: RFC 9112 §2.1-§2.2 (message format,
 * CRLF line endings), §5 (field syntax, obs-fold), RFC 9110 §5.5-§5.6 (field values, tokens).
 * Pure: bytes in, offsets and strings out; the HTTP parsers and writers share it.
 *
 * `HeadScan` finds the end of a head in a buffer that grows between calls without looking at a
 * byte twice (the driver re-offers its accumulated buffer; each call resumes where the last one
 * stopped), and enforces the byte limits while the head is still incomplete.
 *
 * Choices where the RFCs leave room (all strict, because a proxy that reads a head differently
 * from the server behind it is how requests get smuggled):
 * - A bare LF as line terminator is rejected (RFC 9112 §2.2 "MAY recognize a single LF").
 * - A bare CR, NUL or any CTL other than HTAB in a field value is rejected (§2.2, RFC 9110 §5.5).
 * - obs-fold and a field line starting with whitespace are rejected (§5.2 allows rejecting; a
 *   whitespace-led first line is §2.2's "whitespace between start-line and first field").
 * - Whitespace between field name and colon is rejected (§5.1: MUST reject with 400).
 * - obs-text (0x80-0xFF) is allowed anywhere in a field value, first and last byte too (RFC 9110
 *   §5.5 field-vchar; `X-User: José` in UTF-8 ends in one, and nginx and Go pass it). Bun's own
 *   HTTP server trims such bytes from a value's ends, so a Bun workload sees a shorter value, but
 *   the fields that frame or route a request (Content-Length, Transfer-Encoding, Host) are
 *   parsed by grammars without obs-text and refused with it: no request is read two ways.
 *   Their values are trimmed of SP and HTAB only (trimOws), never with String.trim(), which
 *   would strip the latin1-read octets 0xA0 and 0x85 and take `chunked\xA0` for chunked.
 * - Requests: up to MAX_LEADING_EMPTY_LINES empty lines before the request-line are skipped
 *   (§2.2 "SHOULD ignore at least one empty line"); responses get none.
 *
 * Deliberately not supported: obs-fold (refused, above), a bare LF (refused), and field names or
 * values in any encoding other than octets read as ISO-8859-1 (RFC 9110 §5.5).
 */
import { Buffer } from "node:buffer";
import { ProxyError, type ErrorKind } from "../errors.ts";
import type { Header, HeadLimits } from "./http1.ts";

// RFC 5234 Appendix B.1 core rules.
export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const DEL = 0x7f;
export const DIGIT_0 = 0x30;
export const DIGIT_1 = 0x31;
export const DIGIT_9 = 0x39;
const COLON = 0x3a;
/** "H", first octet of HTTP-name (RFC 9112 §2.3), which starts every status-line. */
const HTTP_NAME_FIRST = 0x48;

/** A request-line that ends before its three parts: the usual cause of a 400 for someone typing by hand. */
export const INCOMPLETE_REQUEST_LINE = "request line is not method SP request-target SP HTTP-version";

/**
 * Optional whitespace (RFC 9110 §5.6.3: SP and HTAB only) off both ends. Not String.trim(),
 * which also strips U+00A0 and U+0085, i.e. the obs-text octets 0xA0 and 0x85 of a latin1
 * value: `Transfer-Encoding: chunked\xA0` read as chunked and forwarded as it came, which a
 * server behind us may read as an unknown coding (a framing ambiguity).
 */
export function trimOws(text: string): string {
  let s = 0;
  let e = text.length;
  while (s < e && (text.charCodeAt(s) === SP || text.charCodeAt(s) === HTAB)) s++;
  while (e > s && (text.charCodeAt(e - 1) === SP || text.charCodeAt(e - 1) === HTAB)) e--;
  return s === 0 && e === text.length ? text : text.slice(s, e);
}

/** RFC 9112 §2.2 asks to skip at least one; old clients send one stray CRLF after a POST body. */
const MAX_LEADING_EMPTY_LINES = 4;

/** tchar, RFC 9110 §5.6.2. */
export const TCHAR: Uint8Array = charClass((c) => isAlnum(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)));

/** RFC 9110 §5.6.2 token: one or more tchar (a char past 0xFF is none: TCHAR has 256 entries). */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (TCHAR[text.charCodeAt(i)] !== 1) return false;
  return true;
}
/** field-vchar / SP / HTAB (RFC 9110 §5.5): every octet except CTLs (HTAB excepted) and DEL. */
export const FIELD_CHAR: Uint8Array = charClass((c) => c === HTAB || (c >= SP && c !== DEL));

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

export function charClass(test: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = test(c) ? 1 : 0;
  return t;
}

/** The error kinds one side reports: the client gets 400/414/431, an upstream fault is a 502. */
export interface HeadErrors {
  readonly malformed: ErrorKind;
  readonly lineTooLong: ErrorKind;
  readonly headTooLarge: ErrorKind;
}
const REQUEST_ERRORS: HeadErrors = { malformed: "protocol", lineTooLong: "uriTooLong", headTooLarge: "headersTooLarge" };
const RESPONSE_ERRORS: HeadErrors = {
  malformed: "upstreamProtocol",
  lineTooLong: "upstreamProtocol",
  headTooLarge: "upstreamProtocol",
};

/**
 * Resumable search for the end of one message head. Pass the same instance while the buffer
 * grows (same bytes at the same offsets, more at the end); it resets itself after a head is found
 * or an error is thrown, and when offered a buffer shorter than what it already scanned.
 */
export class HeadScan {
  /** Offset of the first byte of the start-line (after skipped empty lines). */
  startLine = 0;
  /** Offset just past the start-line's CRLF; -1 until found. */
  startLineEnd = -1;
  /** Offset of the LF ending each field line, in order. */
  readonly fieldEnds: number[] = [];
  /**
   * Field-line spans of the last head a HeadShortcut read (scanFieldLines `into`): one array per
   * scan, so per direction of a connection, overwritten by the next head.
   */
  readonly spans: number[] = [];
  #lineStart = 0;
  #searched = 0;

  reset(): void {
    this.startLine = 0;
    this.startLineEnd = -1;
    this.fieldEnds.length = 0;
    this.#lineStart = 0;
    this.#searched = 0;
  }

  /** Offset just past the head's final CRLF, or -1 when more bytes are needed. */
  scan(buf: Uint8Array, limits: HeadLimits, isRequest: boolean): number {
    if (buf.length < this.#searched) this.reset();
    const errors = isRequest ? REQUEST_ERRORS : RESPONSE_ERRORS;
    try {
      const end = this.#scanLines(buf, limits, isRequest, errors);
      if (end >= 0) return end;
      this.#checkIncomplete(buf, limits, isRequest, errors);
      return -1;
    } catch (err) {
      this.reset();
      throw err;
    }
  }

  // The checks run in the same order whether the head arrives whole or byte by byte (first
  // octet, then length limits, then line syntax), so chunking never changes which error is thrown.
  #scanLines(buf: Uint8Array, limits: HeadLimits, isRequest: boolean, errors: HeadErrors): number {
    for (;;) {
      const lf = buf.indexOf(LF, this.#searched);
      if (lf < 0) {
        this.#searched = buf.length;
        return -1;
      }
      const next = lf + 1;
      const bare = lf === this.#lineStart || buf[lf - 1] !== CR;
      if (this.startLineEnd < 0) {
        if (!bare && lf - 1 === this.#lineStart) {
          if (!isRequest || next / 2 > MAX_LEADING_EMPTY_LINES) throw new ProxyError(errors.malformed, "empty start-line");
          this.startLine = next;
        } else {
          this.#checkFirstOctet(buf, isRequest, errors);
          if (lf - 1 - this.startLine > limits.maxRequestLineBytes) throw new ProxyError(errors.lineTooLong, "start-line over limit");
          if (bare) throw new ProxyError(errors.malformed, "bare LF line terminator");
          // A request-line without its HTTP-version ("GET /", HTTP/0.9) can never become a head:
          // answered now, not with a 408 once the header deadline has passed.
          if (isRequest && !endsInVersion(buf, this.startLine, lf - 1)) throw new ProxyError(errors.malformed, INCOMPLETE_REQUEST_LINE);
          this.startLineEnd = next;
        }
      } else {
        if (next - this.startLineEnd > limits.maxHeaderBytes) throw new ProxyError(errors.headTooLarge, "header section over limit");
        if (bare) throw new ProxyError(errors.malformed, "bare LF line terminator");
        if (lf - 1 === this.#lineStart) return next;
        if (this.fieldEnds.push(lf) > limits.maxHeaderCount) throw new ProxyError(errors.headTooLarge, "too many header fields");
      }
      this.#lineStart = this.#searched = next;
    }
  }

  /** Limits hold before the head is complete: a peer cannot make us buffer past them. */
  #checkIncomplete(buf: Uint8Array, limits: HeadLimits, isRequest: boolean, errors: HeadErrors): void {
    if (this.startLineEnd >= 0) {
      if (buf.length - this.startLineEnd > limits.maxHeaderBytes) throw new ProxyError(errors.headTooLarge, "header section over limit");
      return;
    }
    if (buf.length > this.startLine) this.#checkFirstOctet(buf, isRequest, errors);
    // The last byte may be the CR of the CRLF still to come.
    if (buf.length - this.startLine - 1 > limits.maxRequestLineBytes) throw new ProxyError(errors.lineTooLong, "start-line over limit");
  }

  /** Fail fast on what cannot become a start-line (a TLS ClientHello, binary noise). */
  #checkFirstOctet(buf: Uint8Array, isRequest: boolean, errors: HeadErrors): void {
    const first = buf[this.startLine]!;
    const ok = isRequest ? TCHAR[first] === 1 || first === CR : first === HTTP_NAME_FIRST;
    if (!ok) throw new ProxyError(errors.malformed, "not an HTTP/1.x start-line");
  }
}

/** buf[s, e) ends in SP and an HTTP-version after at least one more octet (RFC 9112 §3). */
function endsInVersion(buf: Uint8Array, s: number, e: number): boolean {
  const v = e - HTTP_VERSION_LENGTH;
  return v - 2 >= s && buf[v - 1] === SP && isHttpVersion(buf, v);
}

const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f]; // "HTTP/", case-sensitive (RFC 9112 §2.3)
/** Octets of an HTTP-version: "HTTP/" DIGIT "." DIGIT; where in it the two digits are. */
export const HTTP_VERSION_LENGTH = 8;
export const VERSION_MAJOR_AT = 5;
export const VERSION_MINOR_AT = 7;
const isDigitOctet = (c: number | undefined) => c !== undefined && c >= DIGIT_0 && c <= DIGIT_9;

/** buf[v, v + 8) is an HTTP-version (RFC 9112 §2.3): "HTTP/" DIGIT "." DIGIT. */
export function isHttpVersion(buf: Uint8Array, v: number): boolean {
  for (let k = 0; k < HTTP_SLASH.length; k++) if (buf[v + k] !== HTTP_SLASH[k]) return false;
  return isDigitOctet(buf[v + VERSION_MAJOR_AT]) && buf[v + VERSION_MAJOR_AT + 1] === 0x2e && isDigitOctet(buf[v + VERSION_MINOR_AT]);
}

/** An HTTP-version isHttpVersion accepted, as read here: "1.0", or "1.1" for 1.1 and any higher minor (RFC 9110 §2.5). */
export function versionAt(buf: Uint8Array, v: number): "1.0" | "1.1" {
  return buf[v + VERSION_MINOR_AT] === DIGIT_0 ? "1.0" : "1.1";
}

/**
 * 1*DIGIT of at most `maxDigits` as a number, or null. Exact below 2^53; past it the sum rounds
 * to 2^53 or more, never back below (2^53 is a double), so a safe-integer check on the result
 * still rejects every value over 2^53-1.
 */
export function parseDigits(s: string, maxDigits: number): number | null {
  if (s.length === 0 || s.length > maxDigits) return null;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return null;
    n = n * 10 + (c - DIGIT_0);
  }
  return n;
}

/** parseDigits over the octets buf[s, e), without making a string of them. */
export function parseDigitOctets(buf: Uint8Array, s: number, e: number, maxDigits: number): number | null {
  if (e <= s || e - s > maxDigits) return null;
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i]!;
    if (c < DIGIT_0 || c > DIGIT_9) return null;
    n = n * 10 + (c - DIGIT_0);
  }
  return n;
}

/**
 * ASCII case-insensitive, on octets: buf[s, s + lower.length) against `lower`, which holds only
 * a-z and "-". Setting bit 0x20 maps only A-Z onto a-z, and nothing but "-" (or CR, never in a
 * name or token) onto "-".
 */
export function bytesAre(buf: Uint8Array, s: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[s + i]! | 0x20) !== lower[i]) return false;
  return true;
}

/**
 * ASCII case-insensitive equality with a lower-case field name (RFC 9110 §5.1), without
 * allocating: field names are tokens, so only A-Z need folding.
 */
export function fieldNameIs(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

// Buffer.prototype.latin1Slice decodes a byte range one char per octet (ISO-8859-1) without
// first making a subarray; Bun (natively) and Deno (node:buffer) both have it and accept any
// Uint8Array (tests/http-reverse.e2e.test.ts relays obs-text through both runtimes).
// Against TextDecoder on a subarray: 46 vs 71 ns for a 66-byte head in a loop, and 3 % less
// CPU per proxied HTTP request (A/B, bench/RESULTS.md). It also decodes obs-text, so no slower
// path is needed for it. (TextDecoder("latin1") would be windows-1252, wrong for 0x80-0x9F.)
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;

/** Octets to a string with one char per octet (ISO-8859-1), so byte and char offsets agree. */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  return latin1Slice.call(buf, start, end);
}

/**
 * RFC 9112 §5.1 field-line = field-name ":" OWS field-value OWS, checked on bytes. Returns the
 * byte offsets of each line: [nameStart, nameEnd) and [valueStart, valueEnd), four per line.
 * `kind` is the error of a bad line: "protocol" for a request head (stricter, see above),
 * another for a response's.
 */
export function scanFieldLines(buf: Uint8Array, start: number, fieldEnds: readonly number[], kind: ErrorKind, into: number[] = []): number[] {
  const spans = into;
  spans.length = 0;
  let s = start;
  for (const lf of fieldEnds) {
    const e = lf - 1; // the CR
    let i = s;
    while (i < e && TCHAR[buf[i]!] === 1) i++;
    if (i === e || buf[i] !== COLON || i === s) throw new ProxyError(kind, fieldNameProblem(buf, s, i));
    let vs = i + 1;
    let ve = e;
    while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    for (let k = vs; k < ve; k++) {
      const c = buf[k]!;
      if (FIELD_CHAR[c] !== 1) throw new ProxyError(kind, c === CR ? "bare CR in field value" : "control character in field value");
    }
    spans.push(s, i, vs, ve);
    s = lf + 1;
  }
  return spans;
}

function fieldNameProblem(buf: Uint8Array, s: number, i: number): string {
  const c = buf[i];
  if (i === s && (c === SP || c === HTAB)) return "obs-fold or whitespace before a field line";
  if (i === s && c === COLON) return "empty field name";
  if (c === SP || c === HTAB) return "whitespace between field name and colon";
  if (c === CR) return "field line without colon";
  return "invalid character in field name";
}

/** Builds Header objects from spans over `text`, which was decoded from buf starting at `base`. */
export function headersFromSpans(text: string, base: number, spans: readonly number[]): Header[] {
  const out: Header[] = new Array(spans.length / 4);
  for (let j = 0, h = 0; j < spans.length; j += 4, h++) {
    out[h] = {
      name: text.slice(spans[j]! - base, spans[j + 1]! - base),
      value: text.slice(spans[j + 2]! - base, spans[j + 3]! - base),
    };
  }
  return out;
}
