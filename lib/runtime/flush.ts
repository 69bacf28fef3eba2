/**
 * The flush limit of an answer's close (Conn.endLingering), shared by both adapters: with bytes
 * still queued, the close waits until the kernel has taken them. A peer that never reads would
 * keep that socket open for ever: an HTTP client's connection slot, its response complete and
 * the session closing. After the flush idle limit without a byte taken, the socket is cut (a
 * reset under Bun; Deno can only close, a FIN after what the kernel holds) as nginx's
 * send_timeout does. The limit is --response-timeout (lib/app.ts sets it): the same "no byte
 * moving" limit the HTTP exchange had until its last byte was read. Conn.end() has no such
 * limit: the relay, which ends tunnels with it, keeps its own idle limit until both sockets
 * close. The clocks are IdleDeadlines in the shared deadline sets (lib/sweep.ts): no timer per socket.
 */
import { DEFAULT_LIMITS } from "../limits.ts";
import { IdleDeadline } from "../sweep.ts";

let flushIdleMs = DEFAULT_LIMITS.responseTimeoutMs;

/**
 * What the owner hears in onClose when the flush limit cut its connection: the termination
 * `flush-timeout`, and the bytes that were dropped (counted as sent when they were written).
 */
export class FlushTimeout extends Error {
  constructor(readonly droppedBytes: number) {
    super(`the peer took no byte of the last ${droppedBytes} for ${flushIdleMs} ms: connection cut`);
    this.name = "FlushTimeout";
  }
}

export function setFlushIdleMs(ms: number): void {
  flushIdleMs = ms;
}

/** A clock for one socket's flush: `over` (cut it) runs after the idle limit with no `touch`. */
export function startFlushClock(over: () => void): IdleDeadline {
  return new IdleDeadline(flushIdleMs, Infinity, over);
}
