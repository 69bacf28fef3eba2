/**
 * One request/response in flight on an HTTP session (http.ts), and the rules of its deadline.
 *
 * The exchange's limit is on inactivity, like nginx's proxy_read_timeout / client_body_timeout:
 * it fires after --response-timeout with no byte of the exchange moving either way (the request
 * body, the response; not pipelined requests waiting behind it), so a slow upload or a long
 * download that keeps moving is never cut. Before the response head that is a 504 (or a 408
 * while the client's body is still due); mid-response the connection is cut (the session never
 * sends a second status line). The session owns the clock and checks it as every inactivity
 * limit is checked (lib/sweep.ts `stalled`, as the relay's idle limit); the exchange ends with
 * `stallError`.
 *
 * Plain functions over a plain record on purpose: the session makes one Exchange per request as
 * an object literal, and arming the deadline is on every request's path (no class fields to
 * initialize, no extra object).
 */
import { ProxyError } from "../errors.ts";
import type { DialTarget } from "../dial.ts";
import { type BodyDecoder, hasBody } from "../protocol/http-body.ts";
import type { RequestHead } from "../protocol/http1.ts";
import type { Inactivity } from "../sweep.ts";
import type { ConnRecord } from "../tracker.ts";
import type { ResponseReader } from "./http-response.ts";
import type { Upstream } from "./http-upstream.ts";

/** One request/response in flight. */
export interface Exchange extends Inactivity {
  readonly request: RequestHead;
  /** The head for the upstream; null for a PlainRequest, which writes its own when sent. */
  readonly upstreamHead: Uint8Array | null;
  readonly target: DialTarget;
  readonly targetKey: string;
  /** Sent on an upstream kept alive from an earlier request (a retry candidate: retryable). */
  reused: boolean;
  /** Request body still to relay (null once complete). */
  requestBody: BodyDecoder | null;
  /**
   * Bytes the client sent while this request's body was still due: its share of the activity
   * that keeps the exchange alive. Pipelined bytes after the request do not count, or a client
   * sending one byte now and then would hold a silent upstream open past --response-timeout.
   */
  clientBytes: number;
  upstream: Upstream | null;
  readonly response: ResponseReader;
  keepClient: boolean;
  reuseUpstream: boolean;
}

/**
 * What the exchange's deadline watches (it runs while this stands still): bytes read from either
 * side plus bytes our queues handed to the kernel either way (`clientQueuedBytes`: what still waits
 * toward the client), as the relay's moved() does. A slow reader draining a queue of megabytes
 * (--max-buffered-bytes) while the other side is paused for it is an exchange moving; counting
 * only reads and writes, it was cut as stalled (client-timeout, or 504 for an upload) mid-transfer.
 */
export function bytesMoved(ex: Exchange, rec: ConnRecord, clientQueuedBytes: number): number {
  const upstreamQueuedBytes = ex.upstream?.conn.queuedBytes ?? 0;
  return 2 * ex.clientBytes + ex.response.upstreamBytes + rec.bytesDown - clientQueuedBytes - upstreamQueuedBytes;
}

/** RFC 9110 §9.2.2: requests whose effect is the same if sent twice. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/**
 * Whether an exchange whose upstream closed or reset may be sent again on a new connection
 * (RFC 9112 §9.3.1): it went out on a kept-alive connection, which the upstream may have closed
 * just as we reused it, no byte of a response came back, and the request is idempotent and has
 * no body (the body is not kept). nginx and HAProxy retry these once too.
 */
export function retryable(ex: Exchange): boolean {
  return ex.reused && ex.response.upstreamBytes === 0 && !hasBody(ex.request.framing) && IDEMPOTENT.has(ex.request.method);
}

/**
 * Why an exchange that moved no byte for `ms` ends, by how far it got, and who stopped: the side
 * bytes wait toward in our queues. While the request body is due, with body bytes queued toward
 * the upstream the client is paused for it and the upstream stopped reading (504, as nginx's
 * proxy_send_timeout), not the client (a 408 invites the client to send the request again).
 * Mid-response, with bytes queued toward the client (`clientQueuedBytes`), the client stopped reading
 * and the upstream is paused for it: the client's stall, not the upstream's.
 */
export function stallError(ex: Exchange, ms: number, clientQueuedBytes: number): ProxyError {
  if (ex.response.response) {
    if (clientQueuedBytes > 0) return new ProxyError("clientTimeout", `client read none of the response for ${ms} ms (${clientQueuedBytes} bytes waiting toward it)`);
    return new ProxyError("upstreamTimeout", `response stalled for ${ms} ms`);
  }
  if (ex.requestBody) {
    const waiting = ex.upstream?.conn.queuedBytes ?? 0;
    if (waiting > 0) return new ProxyError("upstreamTimeout", `upstream read none of the request body for ${ms} ms (${waiting} bytes waiting toward it)`);
    return new ProxyError("bodyTimeout", `request body stalled for ${ms} ms`);
  }
  return new ProxyError("upstreamTimeout", `no response head within ${ms} ms`);
}
