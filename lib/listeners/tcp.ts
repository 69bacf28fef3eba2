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
    // config.ts allows tcp on reverse listeners only, which always have a workload.
    const workload = ctx.workload!;
    const held = new Holding(conn, ctx.limits.maxBufferedBytes);
    conn.setEvents(held);
    openTunnel(ctx, rec, conn, held, workload, {});
  },
  refuse(conn: Conn): void {
    // Raw TCP has no way to say why: close at once (SPEC §4, "over a limit: close").
    conn.end();
  },
};
