/**
 * The HTTP driver's entry: what a new connection meets before any HttpSession exists.
 *
 * Most CONNECT clients (curl, Go, Java, undici, browsers) send the whole head in their first
 * segment and never speak HTTP again on that connection. Such a head is parsed here, by the
 * same limits as the session's (in one pass over its bytes, protocol/http1-connect.ts, or
 * else by the session's parser), and goes straight to the tunnel (http-tunnel.ts):
 * no head scanner, phase clock or plain-request state is built for it (2-4 us of the ~60 us
 * a CONNECT costs here; bench/RESULTS.md).
 *
 * Everything else becomes an HttpSession exactly as if it had been there from the accept: a
 * first segment that is not a complete, valid CONNECT head (the session parses it again and
 * gives the same answer, 400/414/431 included), a listener that checks Proxy-Authorization,
 * and any event before the first bytes (FIN, reset, the idle deadline, shutdown).
 */
import { parseRequestHead } from "../protocol/http1.ts";
import { type ConnectRequest, readConnectHead, startsWithConnect } from "../protocol/http1-connect.ts";
import type { Limits } from "../limits.ts";
import { HeadScan } from "../protocol/http1-scan.ts";
import type { Conn, ConnEvents } from "../runtime/types.ts";
import { type Expiring, type SweptSet, deadlinesFor } from "../sweep.ts";
import type { ConnRecord } from "../tracker.ts";
import type { ListenerContext, ProtocolDriver } from "../tunnel.ts";
import { ProxyError } from "../errors.ts";
import { errorFor } from "./http-message.ts";
import { after } from "./http-response.ts";
import { HttpSession } from "./http.ts";
import { connectTunnel } from "./http-tunnel.ts";
import { nowMs } from "../clock.ts";

/** Shared by every front: used only for a whole head in one chunk, and reset before each use. */
const SCAN = new HeadScan();

/**
 * A CONNECT head readConnectHead declined (an IPv6 literal, an Expect line, ...) but the
 * general parser accepts; null for anything else, which the session parses again and answers.
 */
function parseConnectHead(chunk: Uint8Array, limits: Limits): ConnectRequest | null {
  SCAN.reset();
  try {
    const result = parseRequestHead(chunk, limits, SCAN);
    return result.ok && result.head.method === "CONNECT" ? { authority: result.head.authority!, consumed: result.consumed } : null;
  } catch {
    return null;
  }
}

class HttpFront implements ConnEvents, Expiring {
  /** The keep-alive idle deadline, from the accept (the session's first phase). */
  readonly deadlineMs: number;
  private readonly deadlines: SweptSet<Expiring>;
  private slot = -1;

  constructor(
    private readonly ctx: ListenerContext,
    private readonly conn: Conn,
    private readonly rec: ConnRecord,
  ) {
    const idleMs = ctx.limits.idleTimeoutMs;
    this.deadlineMs = nowMs() + idleMs;
    this.deadlines = deadlinesFor(idleMs);
  }

  start(): void {
    this.conn.setEvents(this);
    this.slot = this.deadlines.add(this);
    // Shutdown before the first bytes: the session's start replaces these hooks with its own.
    this.rec.abort = () => {
      this.toSession();
      this.rec.abort?.();
    };
    this.rec.drain = () => {
      this.toSession();
      this.rec.drain?.();
    };
  }

  onData(chunk: Uint8Array): void {
    if (startsWithConnect(chunk)) {
      const head = readConnectHead(chunk, this.ctx.limits) ?? parseConnectHead(chunk, this.ctx.limits);
      if (head) return this.tunnel(chunk, head);
    }
    this.toSession().onData(chunk);
  }

  /** A whole CONNECT head came in `chunk`: the tunnel starts. */
  private tunnel(chunk: Uint8Array, head: ConnectRequest): void {
    this.deadlines.delete(this.slot, this);
    const rec = this.rec;
    rec.bytesUp += chunk.byteLength;
    rec.requests = 1;
    rec.drain = null;
    this.ctx.tracker.handshakeDone(rec);
    connectTunnel(this.ctx, rec, this.conn, head.authority, after(chunk, head.consumed), false);
  }

  onEnd(): void {
    this.toSession().onEnd();
  }

  onDrain(): void {} // nothing has been written yet

  onClose(err?: Error): void {
    this.toSession().onClose(err);
  }

  /** The idle deadline passed with no byte received (from the sweep, out of its set already). */
  expire(): void {
    this.toSession(false).idleExpired();
  }

  faulted(err: unknown): void {
    this.conn.fault(err, "timer"); // onClose hands the FaultError to a new session, which logs it
  }

  /** The session takes the connection over from here. */
  private toSession(inSet = true): HttpSession {
    if (inSet) this.deadlines.delete(this.slot, this);
    const session = new HttpSession(this.ctx, this.conn, this.rec);
    session.start();
    return session;
  }
}

export const httpDriver: ProtocolDriver = {
  handle(ctx: ListenerContext, conn: Conn, rec: ConnRecord): void {
    // A forward listener with credentials checks Proxy-Authorization on every head: the session does.
    if (ctx.config.auth && ctx.workload === null) new HttpSession(ctx, conn, rec).start();
    else new HttpFront(ctx, conn, rec).start();
  },
  refuse(conn: Conn): void {
    conn.write(errorFor(new ProxyError("limitExceeded", "too many connections")));
    conn.end();
  },
};
