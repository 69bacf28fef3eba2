/**
 * Closing after the queue drains (Conn.end, Conn.endLingering), shared by both adapters: end()
 * with bytes still queued closes once the kernel has taken them. A peer that never reads would
 * keep that socket open for ever: an HTTP client's connection slot (its response complete, the
 * session closing), or an upstream we stopped sending a request body to. After the flush idle
 * limit without a byte taken, the socket is reset (nginx send_timeout, HAProxy's client and
 * server timeouts while they wait to write). The limit is --response-timeout (lib/app.ts sets
 * it): the same "no byte moving" limit the HTTP exchange had until its last byte was read.
 * The clocks sit in the shared deadline sets (lib/sweep.ts): no timer per socket.
 */
import { nowMs } from "../clock.ts";
import { reportFault } from "../fault.ts";
import { DEFAULT_LIMITS } from "../limits.ts";
import { type Expiring, deadlinesFor } from "../sweep.ts";

let flushIdleMs = DEFAULT_LIMITS.responseTimeoutMs;

export function setFlushIdleMs(ms: number): void {
  flushIdleMs = ms;
}

/** `over` (reset the socket) runs after the idle limit with no `progress`, up to a tenth late. */
export class FlushClock implements Expiring {
  deadline: number;
  private readonly idleMs = flushIdleMs;
  private lastMs: number;
  private slot: number;
  private stopped = false;

  constructor(private readonly over: () => void) {
    this.lastMs = nowMs();
    this.deadline = this.lastMs + this.idleMs;
    this.slot = deadlinesFor(this.idleMs).add(this);
  }

  /** The kernel took some of the queue. */
  progress(): void {
    this.lastMs = nowMs();
  }

  expire(): void {
    if (this.stopped) return;
    const now = nowMs();
    const left = this.lastMs + this.idleMs - now;
    if (left <= 0) {
      this.stopped = true;
      return this.over();
    }
    this.deadline = now + left;
    this.slot = deadlinesFor(this.idleMs).add(this);
  }

  faulted(err: unknown): void {
    reportFault(err, "timer");
    this.stopped = true;
    this.over();
  }

  /** The queue drained or the socket closed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    deadlinesFor(this.idleMs).delete(this.slot, this);
  }
}
