/**
 * One request/response in flight on an HTTP session (http.ts), and the rules of its deadline.
 *
 * The exchange's limit is on inactivity, like nginx's proxy_read_timeout / client_body_timeout:
 * it fires after --response-timeout with no byte moving either way, so a slow upload or a long
 * download that keeps moving is never cut. Before the response head that is a 504 (or a 408
 * while the client's body is still due); mid-response the connection is cut (the session never
 * sends a second status line). The session owns the clock and checks every quarter of the
 * limit (`stalled`); the exchange ends with `stallError` once four checks in a row saw no byte
 * move, so between 1 and 1.25 times the limit after the last byte (the relay's idle limit
 * works the same way).
 *
 * Plain functions over a plain record on purpose: the session makes one Exchange per request as
 * an object literal, and arming the deadline is on every request's path (no class fields to
 * initialize, no extra object).
 */
import { ProxyError } from "../errors.ts";
import type { BodyDecoder } from "../protocol/http-body.ts";
import type { RequestHead } from "../protocol/http1.ts";
import type { ConnRecord } from "../tracker.ts";
import type { ResponseReader } from "./http-response.ts";
import type { Upstream } from "./http-upstream.ts";

/** One request/response in flight. */
export interface Exchange {
  readonly request: RequestHead;
  /** The head for the upstream; null for a PlainRequest, which writes its own when sent. */
  readonly upstreamHead: Uint8Array | null;
  readonly targetKey: string;
  /** Request body still to relay (null once complete). */
  requestBody: BodyDecoder | null;
  upstream: Upstream | null;
  readonly response: ResponseReader;
  keepClient: boolean;
  reuseUpstream: boolean;
  /** `bytesMoved` at the last check, and the checks in a row since then that saw none move. */
  movedSeen: number;
  stillChecks: number;
}

/** Checks per --response-timeout period. */
export const EXCHANGE_CHECKS = 4;

/** The deadline is (re)started with `moved` bytes moved so far. */
export function startStallChecks(ex: Exchange, moved: number): void {
  ex.movedSeen = moved;
  ex.stillChecks = 0;
}

/** One check, with `moved` bytes moved so far: true once EXCHANGE_CHECKS checks in a row saw none move. */
export function stalled(ex: Exchange, moved: number): boolean {
  if (moved !== ex.movedSeen) {
    startStallChecks(ex, moved);
    return false;
  }
  return ++ex.stillChecks >= EXCHANGE_CHECKS;
}

/** Bytes moved either way in the exchange so far: its deadline runs while this stands still. */
export function bytesMoved(ex: Exchange, rec: ConnRecord): number {
  return rec.bytesUp + rec.bytesDown + ex.response.upstreamBytes;
}

/** Why an exchange that moved no byte for `ms` ends, by how far it got. */
export function stallError(ex: Exchange, ms: number): ProxyError {
  if (ex.response.response) return new ProxyError("upstreamTimeout", `response stalled for ${ms} ms`);
  if (ex.requestBody) return new ProxyError("bodyTimeout", `request body stalled for ${ms} ms`);
  return new ProxyError("upstreamTimeout", `no response head within ${ms} ms`);
}
