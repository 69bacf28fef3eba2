/**
 * Lingering close (Conn.endLingering), shared by both adapters: how many sockets may linger at
 * once, and each one's clock. A lingering socket holds a file descriptor for up to
 * LINGER_MAX_MS after its connection has left the tracker, outside the connection cap; past the
 * budget an answer is followed by a plain close. The app sets the budget with the cap
 * (lib/app.ts), from the fd limit. The clocks are IdleDeadlines in the shared deadline sets
 * (lib/sweep.ts), as every other deadline here: no timer per socket.
 */
import { LINGER_IDLE_MS, LINGER_MAX_MS, LINGER_MAX_SOCKETS } from "../limits.ts";
import { IdleDeadline } from "../sweep.ts";

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
 * byte from the peer (`touch`), or LINGER_MAX_MS in all. `stop` once the socket is closed,
 * whatever closed it (`over` included): it gives the budget's slot back.
 */
export class LingerClock extends IdleDeadline {
  private counted = true;

  constructor(over: () => void) {
    super(LINGER_IDLE_MS, LINGER_MAX_MS, over);
    lingering++;
  }

  override stop(): void {
    super.stop();
    if (!this.counted) return;
    this.counted = false;
    lingering--;
  }
}

/** A clock for one more lingering socket, or null when the budget is spent (close plainly). */
export function startLingering(over: () => void): LingerClock | null {
  return lingering < budget ? new LingerClock(over) : null;
}
