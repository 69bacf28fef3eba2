/**
 * One upstream connection of an HTTP session, kept between requests for keep-alive reuse.
 * It forwards its socket's events to whichever session is attached; while idle, a FIN or close
 * just makes it unusable (the session forgets it and dials anew next time).
 */
import { ProxyError } from "../errors.ts";
import { FaultError } from "../fault.ts";
import type { Conn, ConnEvents } from "../runtime/types.ts";

export interface UpstreamOwner {
  fromUpstream(chunk: Uint8Array): void;
  upstreamDrained(): void;
  upstreamGone(err: ProxyError | undefined, upstream: Upstream): void;
}

export class Upstream implements ConnEvents {
  private owner: UpstreamOwner | null = null;
  private gone = false;

  constructor(
    /** host:port this connection goes to (reuse only for the same key). */
    readonly key: string,
    readonly conn: Conn,
  ) {}

  attach(owner: UpstreamOwner): void {
    this.owner = owner;
    this.conn.setEvents(this);
  }

  /** Stop delivering events (a relay takes over the socket). */
  detach(): void {
    this.owner = null;
  }

  /**
   * Lets go of the connection: FIN, or a reset with `abort`, or when bytes toward it are still
   * queued (its exchange is over: an upstream that stopped reading them would hold the socket
   * for ever behind a FIN). It is detached first: closing a Bun socket runs its close handler
   * synchronously, which must not re-enter the session.
   */
  release(abort: boolean): void {
    this.detach();
    if (abort || this.conn.queuedBytes > 0) this.conn.destroy();
    else this.conn.end();
  }

  usable(): boolean {
    return !this.gone && !this.conn.closed;
  }

  onData(chunk: Uint8Array): void {
    this.owner?.fromUpstream(chunk);
  }

  onEnd(): void {
    this.gone = true;
    this.owner?.upstreamGone(undefined, this);
  }

  onDrain(): void {
    this.owner?.upstreamDrained();
  }

  onClose(err?: Error): void {
    const wasGone = this.gone;
    this.gone = true;
    if (wasGone && !err) return;
    this.owner?.upstreamGone(err ? upstreamFailure(err) : undefined, this);
  }
}

/**
 * What a failed upstream connection means for the exchange: a bug of ours while handling its
 * events (the adapter closed it with a FaultError) is `internal`, as anywhere else; a socket
 * error (a reset, mostly) is the upstream's fault: 502.
 */
function upstreamFailure(err: Error): ProxyError {
  if (err instanceof FaultError) return new ProxyError("internal", err.message, { cause: err });
  return new ProxyError("upstreamProtocol", `upstream connection failed: ${err.message}`, { cause: err });
}
