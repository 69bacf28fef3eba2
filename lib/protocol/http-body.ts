/**
 * HTTP/1.1 message body framing, sans-IO: RFC 9112 §6.3 (message body length), §7.1 (chunked
 * transfer coding: chunk-size, chunk-ext, last-chunk, trailer section).
 *
 * The decoder does not transform anything: a proxy relays the body bytes unchanged (chunked
 * stays chunked, extensions and trailers included) and only needs to know where the message
 * ends, so that the next pipelined message is not forwarded as part of this one. It validates
 * every framing byte, because a lenient chunk parser in front of a strict one (or the reverse)
 * is a request-smuggling vector.
 *
 * The one caller that needs the content without its framing (a chunked response to an HTTP/1.0
 * client, which cannot decode chunked: RFC 9112 §6.1) passes a `spans` array to feed() and gets
 * the offsets of the chunk-data; joinSpans() turns them into bytes. Validation is the same
 * either way, and without `spans` nothing extra is allocated or computed.
 *
 * Choices:
 * - chunk-size is 1*HEXDIG of at most MAX_CHUNK_SIZE_DIGITS digits and at most 2^53-1.
 * - Whitespace after chunk-size only before ";" (RFC 9112 §7.1.1 BWS); "5 \r\n" is rejected.
 * - chunk-ext is checked octet by octet: tokens, "=", ";", BWS and quoted-strings (with
 *   quoted-pair); a CR ends it only when followed by LF. At most MAX_CHUNK_EXT_BYTES per chunk
 *   (CVE-2024-22019: unbounded extensions let a peer make us read forever without progress).
 * - Bare LF anywhere in the framing is rejected, as in heads.
 * - Trailer field lines are checked like header lines (token ":" field-value, no obs-fold) and
 *   bounded by maxTrailerBytes, which the sessions set to --max-header-bytes (431 on a request,
 *   as for the header section).
 * - Errors are "protocol" (400) for a request body and "upstreamProtocol" (502) for a response.
 *
 * Deliberately not supported: transfer codings other than chunked (http1-framing.ts
 * requestFraming rejects them on requests; on responses a non-chunked coding is read until close).
 */
import { ProxyError, hexOctet, type ErrorKind } from "../errors.ts";
import type { BodyFraming } from "./http1.ts";
import { charClass, CR, FIELD_CHAR, HTAB, LF, SP, TCHAR } from "./http1-scan.ts";

/** 2^53-1 fits in 14 hex digits; 16 leaves room for a few leading zeros and no more. */
const MAX_CHUNK_SIZE_DIGITS = 16;
/** Node.js caps chunk extensions at 16 KiB per message (CVE-2024-22019); per chunk, 4 KiB is ample. */
const MAX_CHUNK_EXT_BYTES = 4 * 1024;
/** Trailer section when none is given (the sessions pass --max-header-bytes): the header section's default. */
const DEFAULT_MAX_TRAILER_BYTES = 32 * 1024;

const SEMICOLON = 0x3b;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const EQUALS = 0x3d;
const COLON = 0x3a;

/** Hex value of an octet, or -1. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  if (/[0-9a-fA-F]/.test(ch)) HEX[c] = parseInt(ch, 16);
}
/** chunk-ext outside quotes: token chars, "=", ";", BWS. */
const EXT_CHAR = charClass((c) => TCHAR[c] === 1 || c === EQUALS || c === SEMICOLON || c === SP || c === HTAB);
/** qdtext (RFC 9110 §5.6.4): HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text. */
const QDTEXT = charClass((c) => FIELD_CHAR[c] === 1 && c !== DQUOTE && c !== BACKSLASH);

/** What the chunked decoder waits for next (RFC 9112 §7.1 grammar positions). */
export type ChunkState =
  | "chunkSize"
  | "chunkExtStart" // BWS after chunk-size: only more BWS or ";"
  | "chunkExt"
  | "chunkExtQuoted"
  | "chunkExtEscaped"
  | "chunkSizeLf"
  | "chunkData"
  | "chunkDataCr"
  | "chunkDataLf"
  | "trailerStart"
  | "trailerName"
  | "trailerValue"
  | "trailerLf"
  | "lastLf"
  | "done";

export interface BodyDecoderOptions {
  /** Response body: errors become "upstreamProtocol" (502) instead of "protocol" (400). */
  readonly response?: boolean;
  readonly maxTrailerBytes?: number;
}

/** False for a framing with nothing to read (none, or a length of 0). */
export function hasBody(framing: BodyFraming): boolean {
  return !(framing.kind === "none" || (framing.kind === "length" && framing.length === 0));
}

export class BodyDecoder {
  #framing!: BodyFraming;
  #state!: ChunkState;
  #remaining = 0;
  #digits = 0;
  #extBytes = 0;
  #trailerBytes = 0;
  readonly #kind: ErrorKind;
  readonly #trailerKind: ErrorKind;
  readonly #maxTrailerBytes: number;

  constructor(framing: BodyFraming, opts: BodyDecoderOptions = {}) {
    this.#kind = opts.response ? "upstreamProtocol" : "protocol";
    this.#trailerKind = opts.response ? "upstreamProtocol" : "headersTooLarge";
    this.#maxTrailerBytes = opts.maxTrailerBytes ?? DEFAULT_MAX_TRAILER_BYTES;
    this.reset(framing);
  }

  /** Starts over on the next body, same options: one decoder serves a connection's messages. */
  reset(framing: BodyFraming): void {
    this.#framing = framing;
    this.#remaining = framing.kind === "length" ? framing.length : 0;
    this.#state = hasBody(framing) ? "chunkSize" : "done";
    this.#digits = this.#extBytes = this.#trailerBytes = 0;
  }

  /** Whether `chunk` would complete this body (false on bad framing); a copy reads it, this decoder is unchanged. */
  completedBy(chunk: Uint8Array): boolean {
    const copy = new BodyDecoder(this.#framing, { response: this.#kind === "upstreamProtocol", maxTrailerBytes: this.#maxTrailerBytes });
    copy.#state = this.#state;
    copy.#remaining = this.#remaining;
    copy.#digits = this.#digits;
    copy.#extBytes = this.#extBytes;
    copy.#trailerBytes = this.#trailerBytes;
    try {
      return copy.feed(chunk).done;
    } catch {
      return false;
    }
  }

  get done(): boolean {
    return this.#state === "done";
  }

  /** Where a chunked body is; "chunkSize" for other framings until done. */
  get state(): ChunkState {
    return this.#state;
  }

  /**
   * Consumes body bytes from chunk[offset..]: `used` of them belong to this body (forward them
   * unchanged); whatever follows starts the next message. Throws ProxyError on bad framing.
   *
   * With `spans`, the content among the used bytes is appended to it as [start, end) offset
   * pairs into `chunk`: the chunk-data of a chunked body (never chunk-size, chunk-ext, CRLF,
   * last-chunk or trailer octets), all used bytes otherwise. On a throw, discard what was
   * appended: the framing after it was bad, and the caller writes nothing of that feed.
   */
  feed(chunk: Uint8Array, offset = 0, spans?: number[]): { used: number; done: boolean } {
    const used = this.consume(chunk, offset, spans);
    return { used, done: this.done };
  }

  /** feed, returning only `used` (read `done` after it): no result object on the relay's path. */
  consume(chunk: Uint8Array, offset = 0, spans?: number[]): number {
    const avail = chunk.length - offset;
    if (this.#state === "done" || avail <= 0) return 0;
    switch (this.#framing.kind) {
      case "length": {
        const n = Math.min(this.#remaining, avail);
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = "done";
        spans?.push(offset, offset + n);
        return n;
      }
      case "close":
        spans?.push(offset, chunk.length);
        return avail;
      case "chunked":
        return this.#chunked(chunk, offset, spans);
      default:
        return 0;
    }
  }

  /** The peer closed its side: this ends a "close" body; any other unfinished body was truncated. */
  finish(): void {
    if (this.#state === "done") return;
    if (this.#framing.kind === "close") this.#state = "done";
    else throw new ProxyError(this.#kind, `connection closed inside the body (${this.#state})`);
  }

  #chunked(chunk: Uint8Array, offset: number, spans: number[] | undefined): number {
    const end = chunk.length;
    let p = offset;
    while (p < end && this.#state !== "done") {
      if (this.#state === "chunkData") {
        const n = Math.min(this.#remaining, end - p);
        spans?.push(p, p + n);
        p += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = "chunkDataCr";
      } else {
        this.#step(chunk[p++]!);
      }
    }
    return p - offset;
  }

  /** The transition function for one framing octet. */
  #step(c: number): void {
    switch (this.#state) {
      case "chunkSize":
        return this.#onSizeOctet(c);
      case "chunkExtStart":
        if (c === SEMICOLON) return this.#ext("chunkExt");
        if (c === SP || c === HTAB) return this.#ext("chunkExtStart");
        return this.#fail("chunk-ext", c);
      case "chunkExt":
        if (c === CR) return this.#to("chunkSizeLf");
        if (c === DQUOTE) return this.#ext("chunkExtQuoted");
        if (EXT_CHAR[c] === 1) return this.#ext("chunkExt");
        return this.#fail("chunk-ext octet", c);
      case "chunkExtQuoted":
        if (c === DQUOTE) return this.#ext("chunkExt");
        if (c === BACKSLASH) return this.#ext("chunkExtEscaped");
        if (QDTEXT[c] === 1) return this.#ext("chunkExtQuoted");
        return this.#fail("quoted-string octet", c);
      case "chunkExtEscaped":
        if (FIELD_CHAR[c] === 1) return this.#ext("chunkExtQuoted");
        return this.#fail("quoted-pair octet", c);
      case "chunkSizeLf":
        if (c !== LF) return this.#fail("LF after chunk-size line", c);
        return this.#endSizeLine();
      case "chunkDataCr":
        return c === CR ? this.#to("chunkDataLf") : this.#fail("CRLF after chunk-data", c);
      case "chunkDataLf":
        return c === LF ? this.#to("chunkSize") : this.#fail("LF after chunk-data", c);
      default:
        return this.#trailerStep(c);
    }
  }

  #onSizeOctet(c: number): void {
    const v = HEX[c]!;
    if (v >= 0) {
      this.#remaining = this.#remaining * 16 + v;
      if (++this.#digits > MAX_CHUNK_SIZE_DIGITS || this.#remaining > Number.MAX_SAFE_INTEGER) {
        throw new ProxyError(this.#kind, "chunk-size over 2^53-1");
      }
      return;
    }
    if (this.#digits === 0) return this.#fail("chunk-size hex digit", c);
    if (c === CR) return this.#to("chunkSizeLf");
    if (c === SEMICOLON) return this.#ext("chunkExt");
    if (c === SP || c === HTAB) return this.#ext("chunkExtStart");
    return this.#fail("chunk-size hex digit, chunk-ext or CRLF", c);
  }

  #endSizeLine(): void {
    const last = this.#remaining === 0;
    this.#digits = 0;
    this.#extBytes = 0;
    this.#state = last ? "trailerStart" : "chunkData";
  }

  #trailerStep(c: number): void {
    if (++this.#trailerBytes > this.#maxTrailerBytes) throw new ProxyError(this.#trailerKind, "trailer section over limit");
    switch (this.#state) {
      case "trailerStart":
        if (c === CR) return this.#to("lastLf");
        return TCHAR[c] === 1 ? this.#to("trailerName") : this.#fail("trailer field name or CRLF", c);
      case "trailerName":
        if (c === COLON) return this.#to("trailerValue");
        return TCHAR[c] === 1 ? undefined : this.#fail("trailer field name octet", c);
      case "trailerValue":
        if (c === CR) return this.#to("trailerLf");
        return FIELD_CHAR[c] === 1 ? undefined : this.#fail("trailer field value octet", c);
      case "trailerLf":
        return c === LF ? this.#to("trailerStart") : this.#fail("LF after trailer field", c);
      case "lastLf":
        return c === LF ? this.#to("done") : this.#fail("LF ending the chunked body", c);
      default:
        return this.#fail("no more input", c);
    }
  }

  #to(state: ChunkState): void {
    this.#state = state;
  }

  #ext(state: ChunkState): void {
    if (++this.#extBytes > MAX_CHUNK_EXT_BYTES) throw new ProxyError(this.#kind, "chunk-ext over limit");
    this.#state = state;
  }

  #fail(expected: string, c: number): never {
    throw new ProxyError(this.#kind, `bad chunked body: expected ${expected}, got ${hexOctet(c)} (state ${this.#state})`);
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The bytes of `chunk` that `spans` (from BodyDecoder.feed) name, in order: a view when there is
 * one span (the common case: one read inside one chunk), one copy when there are several, so a
 * read holding many small chunks still becomes one write.
 */
export function joinSpans(chunk: Uint8Array, spans: readonly number[]): Uint8Array {
  if (spans.length === 0) return EMPTY;
  if (spans.length === 2) return chunk.subarray(spans[0]!, spans[1]!);
  let total = 0;
  for (let i = 0; i < spans.length; i += 2) total += spans[i + 1]! - spans[i]!;
  const out = new Uint8Array(total);
  for (let i = 0, at = 0; i < spans.length; i += 2) {
    out.set(chunk.subarray(spans[i]!, spans[i + 1]!), at);
    at += spans[i + 1]! - spans[i]!;
  }
  return out;
}
