/**
 * SOCKS4/4a/5 driver: feeds client bytes to the pure machine (lib/protocol/socks.ts), owns the
 * handshake deadline, dials, answers with the machine's reply and hands over to the relay.
 * Reverse listeners dial the workload whatever DST.ADDR says (never an open relay).
 */
import { createVerifier } from "../auth.ts";
import { ProxyError } from "../errors.ts";
import { faultTermination } from "../fault.ts";
import { type SocksEvent, type SocksMachine, createSocksMachine } from "../protocol/socks.ts";
import { Holding } from "../relay.ts";
import { type Expiring, deadlinesFor } from "../sweep.ts";
import type { Conn, ConnEvents } from "../runtime/types.ts";
import { type ConnRecord, terminationFor } from "../tracker.ts";
import { type ListenerContext, type ProtocolDriver, openTunnel, routeFor } from "../tunnel.ts";

/** SOCKS4 USERID limit: longer is refused (0x5B). Dante and microsocks use 255 too. */
const MAX_USERID_BYTES = 255;

/** The handshake deadline is an entry in a shared deadline set, not a timer per connection. */
class SocksSession implements ConnEvents, Expiring {
  private readonly machine: SocksMachine;
  deadline = 0;
  private slot = -1;
  private done = false;

  constructor(
    private readonly ctx: ListenerContext,
    private readonly conn: Conn,
    private readonly rec: ConnRecord,
  ) {
    const auth = ctx.config.auth;
    this.machine = createSocksMachine({
      auth: auth ? { verify: createVerifier(auth) } : null,
      maxUserIdBytes: MAX_USERID_BYTES,
    });
  }

  start(): void {
    this.conn.setEvents(this);
    this.deadline = Date.now() + this.ctx.limits.handshakeTimeoutMs;
    this.slot = deadlinesFor(this.ctx.limits.handshakeTimeoutMs).add(this);
  }

  expire(): void {
    const ms = this.ctx.limits.handshakeTimeoutMs;
    this.fail(new ProxyError("headerTimeout", `SOCKS handshake not complete in ${ms} ms`), null, "handshake-timeout");
  }

  faulted(err: unknown): void {
    this.conn.fault(err, "timer");
  }

  private stopClock(): void {
    deadlinesFor(this.ctx.limits.handshakeTimeoutMs).delete(this.slot, this);
  }

  onData(chunk: Uint8Array): void {
    if (this.done) return;
    // Handshake bytes count like HTTP CONNECT's head does: bytesUp/Down are all the wire carried.
    this.rec.bytesUp += chunk.byteLength;
    for (const ev of this.machine.feed(chunk)) this.apply(ev);
  }

  private send(bytes: Uint8Array): void {
    this.rec.bytesDown += bytes.byteLength;
    this.conn.write(bytes);
  }

  private apply(ev: SocksEvent): void {
    if (ev.type === "send") {
      this.send(ev.bytes);
    } else if (ev.type === "fail") {
      this.fail(new ProxyError(ev.kind, ev.detail), ev.reply);
    } else {
      this.connect(ev.target.host, ev.target.port);
    }
  }

  private connect(host: string, port: number): void {
    this.done = true;
    this.stopClock();
    this.ctx.tracker.handshakeDone(this.rec);
    const held = new Holding(this.conn, this.ctx.limits.maxBufferedBytes);
    this.conn.setEvents(held);
    const machine = this.machine;
    const early = machine.takeRest();
    openTunnel(
      this.ctx,
      this.rec,
      this.conn,
      held,
      routeFor(this.ctx, { host, port }),
      {
        connected: (up) => this.send(machine.success({ address: up.localAddress, port: up.localPort })),
        failed: (err) => {
          const reply = machine.failure(err.kind);
          if (reply) this.send(reply);
        },
      },
      early,
    );
  }

  private fail(err: ProxyError, reply: Uint8Array | null, termination?: string): void {
    if (this.done) return;
    this.done = true;
    this.stopClock();
    if (reply) this.send(reply);
    this.conn.end();
    this.ctx.tracker.close(this.rec, termination ?? terminationFor(err.kind), err);
  }

  onEnd(): void {
    // FIN before the request was complete: nothing to proxy.
    this.fail(new ProxyError("protocol", "client closed during the SOCKS handshake"), null, "client-aborted");
  }

  onDrain(): void {}

  onClose(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.stopClock();
    this.ctx.tracker.close(this.rec, faultTermination(err, "client-aborted"));
  }
}

export const socksDriver: ProtocolDriver = {
  handle(ctx: ListenerContext, conn: Conn, rec: ConnRecord): void {
    new SocksSession(ctx, conn, rec).start();
  },
  refuse(conn: Conn): void {
    // SPEC §4: over a limit, SOCKS closes (no request has been read to answer).
    conn.end();
  },
};
