/**
 * How many sockets may linger at once (Conn.endLingering), across both adapters. Each holds a
 * file descriptor for up to LINGER_MAX_MS after its connection has left the tracker, outside
 * the connection cap; past the budget an answer is followed by a plain close, as before
 * lingering existed. The app sets the budget with the cap (lib/app.ts), from the fd limit.
 */
import { LINGER_MAX_SOCKETS } from "../limits.ts";

let budget = LINGER_MAX_SOCKETS;
let lingering = 0;

export function setLingerBudget(sockets: number): void {
  budget = Math.max(0, Math.floor(sockets));
}

/** A slot for one more lingering socket, or false when the budget is spent. */
export function takeLingerSlot(): boolean {
  if (lingering >= budget) return false;
  lingering++;
  return true;
}

export function releaseLingerSlot(): void {
  if (lingering > 0) lingering--;
}

/** Sockets lingering now (/metrics sidecar_lingering_sockets). */
export function lingeringSockets(): number {
  return lingering;
}
