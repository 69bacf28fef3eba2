/**
 * The response side of one HTTP exchange: upstream bytes in, client bytes out. It parses heads
 * (relaying 1xx, handing a 101 to the session when the request asked for an upgrade), lets the
 * session decide the final head (keep-alive is a session matter), relays the body unchanged
 * while BodyDecoder finds its end, and reports where the message ended. Errors go to the sink;
 * once any byte of the final head has been written, `started` is true and the session must cut
 * the connection rather than answer with a second status line.
 *
 * One exception to "unchanged": a chunked response to an HTTP/1.0 request. We always ask the
 * upstream in HTTP/1.1 (RFC 9110 §6.2), so it may chunk, but a 1.0 client cannot decode chunked
 * and must not be sent Transfer-Encoding (RFC 9112 §6.1). As nginx does, the body then goes out
 * as its chunk-data only, delimited by closing the client connection (see `dechunk`).
 */
import { ProxyError, asProxyError } from "../errors.ts";
import { quote } from "../text.ts";
import { BodyDecoder, joinSpans } from "../protocol/http-body.ts";
import { type BodyFraming, HeadScan, type HeadLimits, type RequestHead, type ResponseHead, fieldNameIs, parseResponseHead, responseFraming, upgradeOffered } from "../protocol/http1.ts";
import { NO_BODY, listTokens } from "../protocol/http1-framing.ts";
import { interimResponseHead } from "./http-message.ts";
import { PlainResponses } from "./http-plain-response.ts";

export interface ResponseSink {
  /** Bytes for the client: interim heads, the final head, body bytes. */
  toClient(bytes: Uint8Array): void;
  /**
   * The final head arrived: send it (the session decides keep-alive), followed in the same
   * write by body[bodyStart, bodyEnd), the body bytes that came with it (a range, not a view: a
   * view is one more object per response). With `dechunk` the body is relayed without its
   * chunked framing: the head must not name chunked, and the client connection must close after
   * the body, since that is what delimits it.
   */
  responseHead(response: ResponseHead, framing: BodyFraming, dechunk: boolean, body: Uint8Array, bodyStart: number, bodyEnd: number): void;
  /** 101 to an Upgrade request: the connection becomes a tunnel; `rest` is already tunnel data. */
  responseUpgrade(response: ResponseHead, rest: Uint8Array): void;
  /** The message is complete; `extra` are bytes the upstream sent after it. */
  responseDone(extra: Uint8Array): void;
  fail(err: ProxyError): void;
}

const EMPTY = new Uint8Array(0);

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

/**
 * buf from `offset` on, without a new view where none is needed: most messages end exactly where
 * a read ends, and a view of nothing is still an object (and, in JavaScriptCore, may first
 * give its buffer an ArrayBuffer of its own).
 */
export function after(buf: Uint8Array, offset: number): Uint8Array {
  if (offset === 0) return buf;
  return offset >= buf.byteLength ? EMPTY : buf.subarray(offset);
}

export class ResponseReader {
  /** The final response head, once parsed. */
  response: ResponseHead | null = null;
  /** The final head has been written to the client. */
  started = false;
  /** Bytes received from the upstream (the exchange's inactivity clock watches them). */
  upstreamBytes = 0;
  private request!: RequestHead;
  /** Reset for each response; in use once the final head is in (`reading`). */
  private readonly body: BodyDecoder;
  private reading = false;
  /** Chunk-data offsets of the current feed; set only when de-chunking for an HTTP/1.0 client. */
  private spans: number[] | undefined;
  /** Bytes the body took from the last chunk fed (feedBody). */
  private fed = 0;
  private headBuf: Uint8Array = EMPTY;
  /** Plain response heads, read on bytes (http-plain-response.ts); one head for the reader. */
  private readonly plain = new PlainResponses();

  /** `scan` is reset at each begin. */
  constructor(
    request: RequestHead,
    private readonly limits: HeadLimits,
    private readonly sink: ResponseSink,
    private readonly scan: HeadScan = new HeadScan(),
  ) {
    // A trailer section is a header section at the other end (RFC 9112 §7.1.2): the same limit.
    this.body = new BodyDecoder(NO_BODY, { response: true, maxTrailerBytes: limits.maxHeaderBytes });
    this.begin(request);
  }

  /** Reads the response to the next request: one reader serves a connection's exchanges in turn. */
  begin(request: RequestHead): void {
    this.request = request;
    this.response = null;
    this.started = false;
    this.upstreamBytes = 0;
    this.reading = false;
    this.spans = undefined;
    this.fed = 0;
    this.headBuf = EMPTY;
    this.scan.reset();
  }

  feed(chunk: Uint8Array): void {
    this.upstreamBytes += chunk.byteLength;
    if (this.reading) return this.relayBody(chunk, 0);
    this.headBuf = concat(this.headBuf, chunk);
    this.parseHeads();
  }

  /** The upstream finished sending (FIN): ends a read-until-close body; anything else is cut short. */
  end(): void {
    if (!this.reading) return this.sink.fail(new ProxyError("upstreamProtocol", "upstream closed before a complete response"));
    try {
      this.body.finish();
    } catch (err) {
      return this.sink.fail(asProxyError(err));
    }
    this.sink.responseDone(EMPTY);
  }

  private parseHeads(): void {
    for (;;) {
      let result;
      try {
        result = parseResponseHead(this.headBuf, this.limits, this.scan, this.plain);
      } catch (err) {
        return this.sink.fail(asProxyError(err));
      }
      if (!result.ok) return;
      const response = result.head;
      const buf = this.headBuf;
      this.headBuf = EMPTY;
      if (response.status === 101) {
        // RFC 9110 §7.8: a switch the request did not ask for, or to a protocol it did not offer,
        // is not relayed: the client would read the new protocol's bytes as HTTP.
        const upgrade = this.request.upgrade;
        if (upgrade === null) return this.sink.fail(new ProxyError("upstreamProtocol", "101 Switching Protocols to a request that asked for no upgrade"));
        if (!upgradeOffered(upgrade, response)) return this.sink.fail(new ProxyError("upstreamProtocol", `101 Switching Protocols to a protocol the request did not offer (${quote(upgrade)})`));
        return this.sink.responseUpgrade(response, after(buf, result.consumed));
      }
      if (response.status >= 200) return this.start(response, buf, result.consumed);
      // 100 Continue, 103 Early Hints: relayed; the final response follows. Not to an HTTP/1.0
      // client, which does not expect them (RFC 9110 §15.2: a server MUST NOT send it a 1xx).
      if (this.request.version !== "1.0") this.sink.toClient(interimResponseHead(response));
      this.headBuf = after(buf, result.consumed);
      if (this.headBuf.byteLength === 0) return;
    }
  }

  /** The final head; its body starts at buf[offset]. */
  private start(response: ResponseHead, buf: Uint8Array, offset: number): void {
    if (this.request.version === "1.0") {
      // RFC 9112 §6.1: no Transfer-Encoding to an HTTP/1.0 client. A final chunked is removed
      // (de-chunked below); any other coding is a property of the bytes that only a 1.1 client
      // can be told of: 502, as nginx answers a coding it does not know.
      const coding = otherTransferCoding(response);
      if (coding !== null) return this.sink.fail(new ProxyError("upstreamProtocol", `transfer coding "${coding}" cannot be passed to an HTTP/1.0 client`));
    }
    this.response = response;
    const framing = responseFraming(this.request, response);
    // HEAD, 1xx, 204 and 304 have framing "none" here, so they are never de-chunked.
    const dechunk = this.request.version === "1.0" && framing.kind === "chunked";
    if (dechunk) this.spans = [];
    this.body.reset(framing);
    this.reading = true;
    // The body bytes that came with the head go out in the same write (one buffer, one send per
    // small response), and a body that turns out malformed is answered with a 502 rather than a
    // cut-off response.
    if (!this.feedBody(buf, offset)) return;
    this.started = true;
    const spans = this.spans;
    if (spans) {
      const content = joinSpans(buf, spans);
      this.sink.responseHead(response, framing, dechunk, content, 0, content.byteLength);
    } else this.sink.responseHead(response, framing, dechunk, buf, offset, offset + this.fed);
    if (this.body.done) this.sink.responseDone(after(buf, offset + this.fed));
  }

  /** Relays what of `chunk` belongs to the body; what follows it is reported as extra. */
  private relayBody(chunk: Uint8Array, offset: number): void {
    if (!this.feedBody(chunk, offset)) return;
    const end = offset + this.fed;
    const body = this.spans ? joinSpans(chunk, this.spans) : offset === 0 && end === chunk.byteLength ? chunk : chunk.subarray(offset, end);
    if (body.byteLength > 0) this.sink.toClient(body);
    if (this.body.done) this.sink.responseDone(after(chunk, end));
  }

  /**
   * Feeds chunk[offset..] to the body decoder: `fed` is how many bytes the body took, `spans`
   * (when de-chunking) where its chunk-data is. False after a framing error, which has been
   * reported to the sink.
   */
  private feedBody(chunk: Uint8Array, offset: number): boolean {
    const spans = this.spans;
    if (spans) spans.length = 0;
    try {
      this.fed = this.body.consume(chunk, offset, spans);
    } catch (err) {
      this.sink.fail(asProxyError(err));
      return false;
    }
    return true;
  }
}

/** The first transfer coding of a response other than one final chunked, or null. */
function otherTransferCoding(response: ResponseHead): string | null {
  const codings: string[] = [];
  for (const h of response.headers) if (fieldNameIs(h.name, "transfer-encoding")) listTokens(h.value, codings);
  if (codings.at(-1) === "chunked") codings.pop();
  return codings[0] ?? null;
}
