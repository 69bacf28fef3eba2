/**
 * Reverse `tcp`: an opaque byte relay from the in-port to the workload (SPEC §3). There is no
 * handshake: bytes the client sends while the workload is being dialled are held and delivered
 * first, and a refused, unreachable or timed-out workload closes the client (and is logged).
 */
import { Holding } from "../relay.ts";
import type { Conn } from "../runtime/types.ts";
import type { ConnRecord } from "../tracker.ts";
import { type ListenerContext, type ProtocolDriver, openTunnel } from "../tunnel.ts";

export const tcpDriver: ProtocolDriver = {
  handle(ctx: ListenerContext, conn: Conn, rec: ConnRecord): void {
    const held = new Holding(conn, ctx.limits.maxBufferedBytes);
    conn.setEvents(held);
    if (!ctx.workload) throw new Error("tcp driver needs a workload target (reverse listeners only)");
    openTunnel(ctx, rec, conn, held, ctx.workload, {});
  },
  refuse(conn: Conn): void {
    // Raw TCP has no way to say why: close at once (SPEC §4, "over a limit: close").
    conn.end();
  },
};
