/**
 * The two ways an HTTP session (http.ts) becomes a tunnel through the shared relay
 * (lib/tunnel.ts, lib/relay.ts):
 *
 * - CONNECT (RFC 9110 §9.3.6): dial the authority (the workload on a reverse listener), answer
 *   `200 Connection established` or the error response, then relay. Bytes the client sent after
 *   the CONNECT head are the tunnel's first bytes.
 * - Upgrade (RFC 9110 §7.8): the upstream answered 101 to an Upgrade request; the session has sent
 *   the 101 on, and both sockets go to a relay as they are.
 *
 * The session hands off before calling these (HttpSession.handOff): its clock is stopped, its
 * upstream detached, and it no longer reacts to either socket. These take only what the tunnel
 * needs, so nothing here keeps the session (and its buffers) alive.
 */
import type { Authority } from "../protocol/http1.ts";
import { Holding } from "../relay.ts";
import type { Conn } from "../runtime/types.ts";
import type { ConnRecord } from "../tracker.ts";
import { type ListenerContext, openTunnel, routeFor, startRelay } from "../tunnel.ts";
import { CONNECT_ESTABLISHED, errorFor } from "./http-message.ts";

/**
 * CONNECT: `rest` is what the client sent after the head; `clientEnded` that its FIN came too
 * (a pipelined CONNECT behind a FIN): the tunnel then starts half-closed, as the client left it.
 */
export function connectTunnel(ctx: ListenerContext, rec: ConnRecord, conn: Conn, authority: Authority, rest: Uint8Array, clientEnded: boolean): void {
  const target = routeFor(ctx, authority);
  const held = new Holding(conn, ctx.limits.maxBufferedBytes);
  conn.setEvents(held);
  if (clientEnded) held.onEnd();
  openTunnel(ctx, rec, conn, held, target, {
    connected: () => {
      rec.bytesDown += CONNECT_ESTABLISHED.byteLength;
      conn.write(CONNECT_ESTABLISHED);
    },
    failed: (err) => {
      const answer = errorFor(err);
      rec.bytesDown += answer.byteLength; // the log line's bytes include the answer, as for SOCKS replies
      conn.write(answer);
    },
  }, rest);
}

/**
 * After a 101: `clientBytes` are what the client sent after its request (already tunnel data),
 * `rest` what the upstream sent after the 101, `clientEnded` whether the client's FIN came
 * before the 101 (it goes on to the upstream after `clientBytes`).
 */
export function upgradeTunnel(ctx: ListenerContext, rec: ConnRecord, down: Conn, up: Conn, clientBytes: Uint8Array, rest: Uint8Array, clientEnded: boolean): void {
  const relay = startRelay(ctx, rec, down, up, null, clientBytes);
  if (rest.byteLength > 0) relay.fromServer(rest);
  if (clientEnded) relay.clientFin();
}
