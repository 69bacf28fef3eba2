/**
 * SOCKS4/4a/5 driver: feeds client bytes to the pure machine (lib/protocol/socks.ts), owns the
 * handshake deadline, dials, answers with the machine's reply and hands over to the relay.
 * Without authentication, a SOCKS5 greeting and CONNECT request that arrive whole, one per
 * segment (what clients send), are read in one pass each (socks5.ts: isNoAuthGreeting,
 * readConnectRequest) and the machine is made only for anything else, replaying the greeting.
 * Reverse listeners dial the workload whatever DST.ADDR says (never an open relay).
 */
import { createVerifier } from "../auth.ts";
import { ProxyError } from "../errors.ts";
import { faultTermination } from "../fault.ts";
import { REFUSED_READ_MS, REFUSED_READS_MAX } from "../limits.ts";
import { type SocksEvent, type SocksMachine, type SocksOptions, SocksVersion, createSocksMachine, describeReply } from "../protocol/socks.ts";
import { SOCKS4_OVER_LIMIT_REPLY } from "../protocol/socks4.ts";
import { CHOSE_NO_AUTHENTICATION, CONNECTING_REPLIES, isNoAuthGreeting, readConnectRequest } from "../protocol/socks5.ts";
import { Holding } from "../relay.ts";
import { type Expiring, IdleDeadline, deadlinesFor } from "../sweep.ts";
import type { Conn, ConnEvents } from "../runtime/types.ts";
import { type ConnRecord, type Termination, terminationFor } from "../tracker.ts";
import { type ListenerContext, type ProtocolDriver, answered, openTunnel, routeFor } from "../tunnel.ts";
import { nowMs } from "../clock.ts";

/** SOCKS4 USERID limit: longer is refused (0x5B). Dante and microsocks use 255 too. */
const MAX_USERID_BYTES = 255;
/** No early bytes: the request ended its segment. */
const NO_BYTES = new Uint8Array(0);

/** The handshake deadline is an entry in a shared deadline set, not a timer per connection. */
class SocksSession implements ConnEvents, Expiring {
  /** Made on the first bytes the one-pass reading does not take. */
  private machine: SocksMachine | null = null;
  /** A greeting answered without the machine: replayed into it if the machine is needed after all. */
  private greeting: Uint8Array | null = null;
  deadlineMs = 0;
  private slot = -1;
  private done = false;

  constructor(
    private readonly ctx: ListenerContext,
    private readonly conn: Conn,
    private readonly rec: ConnRecord,
  ) {}

  start(): void {
    this.conn.setEvents(this);
    this.deadlineMs = nowMs() + this.ctx.limits.handshakeTimeoutMs;
    this.slot = deadlinesFor(this.ctx.limits.handshakeTimeoutMs).add(this);
    // Still in its handshake when the grace period ends: cut and logged like a tunnel (the
    // tunnel replaces this hook once the request is read).
    this.rec.abort = () => {
      if (this.done) return;
      this.done = true;
      this.stopClock();
      this.conn.destroy();
      this.ctx.tracker.close(this.rec, "shutdown");
    };
  }

  expire(): void {
    const ms = this.ctx.limits.handshakeTimeoutMs;
    this.fail(new ProxyError("handshakeTimeout", `SOCKS handshake not complete in ${ms} ms`), null, "handshake-timeout");
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
    if (this.machine === null && this.ctx.config.auth === null) {
      if (this.greeting === null) {
        if (isNoAuthGreeting(chunk)) {
          this.greeting = chunk;
          return this.send(CHOSE_NO_AUTHENTICATION);
        }
      } else {
        const request = readConnectRequest(chunk);
        if (request) {
          const { host, port } = request.target;
          return this.connect(host, port, request.size < chunk.byteLength ? chunk.subarray(request.size) : NO_BYTES, CONNECTING_REPLIES);
        }
      }
    }
    for (const ev of this.machineFor().feed(chunk)) this.apply(ev);
  }

  private machineFor(): SocksMachine {
    if (this.machine) return this.machine;
    const auth = this.ctx.config.auth;
    const options: SocksOptions = { auth: auth ? { verify: createVerifier(auth) } : null, maxUserIdBytes: MAX_USERID_BYTES };
    const machine = (this.machine = createSocksMachine(options));
    // Its one event is the reply already sent (CHOSE_NO_AUTHENTICATION): the machine only catches up.
    if (this.greeting) machine.feed(this.greeting);
    return machine;
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
      const machine = this.machine!;
      this.connect(ev.target.host, ev.target.port, machine.takeRest(), machine);
    }
  }

  /** `replies` answers the request once dialled: the machine, or CONNECTING_REPLIES for a request it never saw. */
  private connect(host: string, port: number, early: Uint8Array, replies: Pick<SocksMachine, "success" | "failure">): void {
    this.done = true;
    this.stopClock();
    this.ctx.tracker.handshakeDone(this.rec);
    const held = new Holding(this.conn, this.ctx.limits.maxBufferedBytes);
    this.conn.setEvents(held);
    openTunnel(
      this.ctx,
      this.rec,
      this.conn,
      held,
      routeFor(this.ctx, { host, port }),
      {
        connected: (up) => this.send(replies.success({ address: up.localAddress, port: up.localPort })),
        failed: (err) => {
          const reply = replies.failure(err.kind);
          if (!reply) return;
          this.send(reply);
          return describeReply(reply);
        },
      },
      early,
    );
  }

  /** Ends the handshake: `err` null for a close that is no failure (`termination` then names it). */
  private fail(err: ProxyError | null, reply: Uint8Array | null, termination?: Termination): void {
    if (this.done) return;
    this.done = true;
    this.stopClock();
    // The log line names what the client was told, in the RFC's words.
    if (err && reply) err = answered(err, describeReply(reply));
    if (reply) {
      this.send(reply);
      this.conn.endLingering(); // the client may have sent more after its request: no reset over the reply
    } else this.conn.end();
    if (err === null) this.ctx.tracker.close(this.rec, termination ?? "client-fin");
    else this.ctx.tracker.close(this.rec, termination ?? terminationFor(err.kind), err);
  }

  onEnd(): void {
    // A connect-and-close with nothing sent (a tcpSocket probe, a port scan) asked for nothing:
    // closed as the HTTP listener closes one, not counted as a protocol error.
    if (this.rec.bytesUp === 0) return this.fail(null, null, "client-fin");
    // FIN before the request was complete: the client gave up (HAProxy's "CR"), nothing to
    // proxy; not malformed input, so no protocol error, as the HTTP listener logs a FIN inside a head.
    this.fail(null, null, "client-aborted");
  }

  onDrain(): void {}

  onClose(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.stopClock();
    this.ctx.tracker.close(this.rec, faultTermination(err, "client-aborted"));
  }
}

/** Refused clients awaiting their first bytes now (REFUSED_READS_MAX). */
let refusedReads = 0;

/**
 * Over the connection cap (SPEC §4): a SOCKS4 request is answered CD 0x5B, anything else is
 * closed. The version is in the client's first bytes, awaited for REFUSED_READ_MS; then the
 * close lingers (what the client still sends is read and dropped), so no reset destroys the
 * reply. Past REFUSED_READS_MAX clients waiting at once, closed at once.
 */
function refuse(conn: Conn): void {
  if (refusedReads >= REFUSED_READS_MAX) return conn.end();
  refusedReads++;
  let waiting = true;
  const settled = (): boolean => {
    if (!waiting) return false;
    waiting = false;
    refusedReads--;
    clock.stop();
    return true;
  };
  const clock = new IdleDeadline(REFUSED_READ_MS, REFUSED_READ_MS, () => {
    if (settled()) conn.end();
  });
  conn.setEvents({
    onData(chunk: Uint8Array): void {
      if (!settled()) return;
      if (chunk[0] === SocksVersion.Socks4) conn.write(SOCKS4_OVER_LIMIT_REPLY);
      conn.endLingering();
    },
    onEnd(): void {
      if (settled()) conn.end();
    },
    onDrain(): void {},
    onClose(): void {
      settled();
    },
  });
}

export const socksDriver: ProtocolDriver = {
  handle(ctx: ListenerContext, conn: Conn, rec: ConnRecord): void {
    new SocksSession(ctx, conn, rec).start();
  },
  refuse,
};
