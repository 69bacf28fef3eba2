/**
 * Lingering close (Conn.endLingering), shared by both adapters: how many sockets may linger at
 * once, and each one's clock. A lingering socket holds a file descriptor for up to
 * LINGER_MAX_MS after its connection has left the tracker, outside the connection cap; past the
 * budget an answer is followed by a plain close. The app sets the budget with the cap
 * (lib/app.ts), from the fd limit. The clocks sit in the shared deadline set of LINGER_IDLE_MS
 * (lib/sweep.ts), as every other deadline here: no timer per socket.
 */
import { reportFault } from "../fault.ts";
import { LINGER_IDLE_MS, LINGER_MAX_MS, LINGER_MAX_SOCKETS } from "../limits.ts";
import { type Expiring, deadlinesFor } from "../sweep.ts";
import { nowMs } from "../clock.ts";

let budget = LINGER_MAX_SOCKETS;
let lingering = 0;

export function setLingerBudget(sockets: number): void {
  budget = Math.max(0, Math.floor(sockets));
}

/** Sockets lingering now (/metrics sidecar_lingering_sockets). */
export function lingeringSockets(): number {
  return lingering;
}

/**
 * One lingering socket's clock: `over` (close the socket) runs after LINGER_IDLE_MS without a
 * byte from the peer (`byte`), or LINGER_MAX_MS in all, up to a tenth late. `stop` once the
 * socket is closed, whatever closed it: it gives the budget's slot back.
 */
export class LingerClock implements Expiring {
  deadline: number;
  private readonly startedMs: number;
  private lastByteMs: number;
  private slot: number;
  private stopped = false;

  constructor(private readonly over: () => void) {
    lingering++;
    this.startedMs = this.lastByteMs = nowMs();
    this.deadline = this.startedMs + LINGER_IDLE_MS;
    this.slot = deadlinesFor(LINGER_IDLE_MS).add(this);
  }

  byte(): void {
    this.lastByteMs = nowMs();
  }

  expire(): void {
    if (this.stopped) return;
    const now = nowMs();
    const left = Math.min(this.lastByteMs + LINGER_IDLE_MS, this.startedMs + LINGER_MAX_MS) - now;
    if (left <= 0) return this.over();
    this.deadline = now + left;
    this.slot = deadlinesFor(LINGER_IDLE_MS).add(this);
  }

  faulted(err: unknown): void {
    reportFault(err, "timer");
    this.over();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    lingering--;
    deadlinesFor(LINGER_IDLE_MS).delete(this.slot, this);
  }
}

/** A clock for one more lingering socket, or null when the budget is spent (close plainly). */
export function startLingering(over: () => void): LingerClock | null {
  return lingering < budget ? new LingerClock(over) : null;
}
