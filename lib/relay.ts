/**
 * The one relay every tunnel uses (reverse TCP, SOCKS CONNECT, HTTP CONNECT, WebSocket).
 *
 * - Backpressure both ways: when more than `maxBufferedBytes` wait toward one side, the other
 *   side is paused until that queue drains (Envoy's watermark buffers).
 * - Half-close: a FIN from one side becomes a write-shutdown toward the other, and the other
 *   direction keeps flowing (Go's httputil/x/net copy does the same). The tunnel ends when both
 *   directions have ended, or when a side resets, idles out, or the proxy shuts down.
 * - Counts bytes each way and reports how it ended (`RelayTermination`).
 *
 * Hot path (per chunk): one method call, one flag test, one write, one counter add. No
 * allocation, no logging, no clock reads: the idle check samples the counters from a timer
 * instead of stamping each chunk.
 */
import { faultTermination } from "./fault.ts";
import type { Conn, ConnEvents } from "./runtime/types.ts";
import { type Expiring, type Inactivity, type SweptSet, deadlinesFor, inactivityTickMs, stalled, sweptSetFor } from "./sweep.ts";
import { nowMs } from "./clock.ts";

export type RelayTermination =
  | "client-fin" // both directions ended cleanly; the client finished first
  | "server-fin" // both directions ended cleanly; the server finished first
  | "client-close" // the client closed its socket entirely while the server still had data to send
  | "server-close"
  | "client-reset"
  | "server-reset"
  | "idle-timeout"
  | "half-closed-timeout"
  | "shutdown" // cut at the end of the shutdown grace period
  | "internal"; // a bug closed one side (lib/fault.ts)

export interface RelayOptions {
  readonly maxBufferedBytes: number;
  readonly idleTimeoutMs: number;
  readonly halfClosedTimeoutMs: number;
}

/**
 * Told once when a relay has finished, with the token it was given (the tracker, with the
 * connection's record): an owner and a token instead of a callback, so a tunnel costs no closure.
 */
export interface RelayOwner<T> {
  relayDone(relay: Relay<T>, token: T): void;
}

/** What a connection's downstream did while its upstream was being dialled. */
export class Holding implements ConnEvents {
  readonly chunks: Uint8Array[] = [];
  bytes = 0;
  ended = false;
  closed = false;
  error: Error | undefined;
  /** Called when the client goes away before the relay starts (handshake drivers abort the dial). */
  onGone: (() => void) | null = null;

  constructor(
    private readonly conn: Conn,
    private readonly maxBufferedBytes: number,
  ) {}

  onData(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
    if (this.bytes >= this.maxBufferedBytes) this.conn.pause();
  }
  onEnd(): void {
    this.ended = true;
  }
  onDrain(): void {}
  onClose(err?: Error): void {
    this.closed = true;
    this.error = err;
    this.onGone?.();
  }
}

// One interval per idle-limit value checks every tunnel with that limit (lib/sweep.ts).
const sweepers = new Map<number, SweptSet<Relay>>();
const checkIdle = (relay: Relay): void => relay.checkIdle();
const idleCheckFaulted = (relay: Relay, err: unknown): void => relay.faulted(err);

function sweeperFor(idleTimeoutMs: number): SweptSet<Relay> {
  return sweptSetFor(sweepers, inactivityTickMs(idleTimeoutMs), checkIdle, idleCheckFaulted);
}

export class Relay<T = unknown> implements Expiring, Inactivity {
  bytesUp = 0; // client -> server
  bytesDown = 0; // server -> client
  termination: RelayTermination | null = null;
  private clientReadDone = false; // client sent FIN (or is gone)
  private serverReadDone = false;
  private clientClosed = false;
  private serverClosed = false;
  private firstFin: "client" | "server" | null = null;
  private sweeper: SweptSet<Relay> | null = null;
  private idleSlot = -1;
  private halfClosedSlot = -1;
  /** Half-closed inactivity deadline (Expiring): set while exactly one direction has ended. */
  deadlineMs = 0;
  private halfSeenBytes = -1; // bytes moved when the half-closed deadline was (re)armed; -1: unarmed
  /** The idle limit's checks (Inactivity: a tunnel idles out within 1.25x the limit). */
  movedSeenBytes = -1;
  stillChecks = 0;
  private finished = false;

  constructor(
    private readonly down: Conn,
    private readonly up: Conn,
    private readonly options: RelayOptions,
    private readonly owner: RelayOwner<T>,
    private readonly token: T,
  ) {}

  /**
   * Takes over both sockets. `earlyBytes` came with the handshake (the caller has counted them
   * already); `held` is what the client did while the upstream was dialled.
   */
  start(held: Holding | null, earlyBytes?: Uint8Array): void {
    this.down.setEvents(new ClientSide(this));
    this.up.setEvents(new ServerSide(this));
    this.sweeper = sweeperFor(this.options.idleTimeoutMs);
    this.idleSlot = this.sweeper.add(this);
    if (earlyBytes && earlyBytes.byteLength > 0) this.up.write(earlyBytes);
    if (held) {
      for (const chunk of held.chunks) this.fromClient(chunk);
      held.chunks.length = 0;
      if (held.closed) this.clientGone(held.error);
      else if (held.ended) this.clientFin();
    }
    // The client may have been paused before (Holding, or an HTTP session whose pipelined bytes
    // became these early bytes): from here only the upstream's queue holds it back.
    if (!held?.closed && this.up.queuedBytes < this.options.maxBufferedBytes) this.down.resume();
  }

  /**
   * Ends the tunnel now. At the end of the shutdown grace period both sides are reset; when an
   * idle or half-closed limit passes, each side is closed as HAProxy and nginx close on their
   * timeouts: a FIN after what the kernel still holds for it, or a reset if it had sent bytes
   * that were never read (it was paused for the other side), and a reset at once if bytes still
   * wait toward it in our queue (a peer that stopped reading). Nothing moved for the whole limit,
   * so a lingering close would mostly hold a socket for a peer that is not there.
   */
  abort(termination: RelayTermination): void {
    if (this.finished) return;
    this.termination ??= termination;
    // Finished first: the close events the cut itself raises (Bun reports a destroy at once)
    // must not be taken for a peer going away, which would end the other side gracefully.
    this.maybeFinish(true);
    const reset = termination === "shutdown";
    for (const side of [this.down, this.up]) {
      if (reset || side.queuedBytes > 0) side.destroy();
      else side.end();
    }
  }

  fromClient(chunk: Uint8Array): void {
    // What a side sends after the other has gone reaches nobody: dropped, not counted as carried.
    if (this.serverClosed) return;
    this.bytesUp += chunk.byteLength;
    if (!this.up.write(chunk) && this.up.queuedBytes >= this.options.maxBufferedBytes) this.down.pause();
  }

  fromServer(chunk: Uint8Array): void {
    if (this.clientClosed) return;
    this.bytesDown += chunk.byteLength;
    if (!this.down.write(chunk) && this.down.queuedBytes >= this.options.maxBufferedBytes) this.up.pause();
  }

  upstreamDrained(): void {
    this.down.resume();
  }

  downstreamDrained(): void {
    this.up.resume();
  }

  clientFin(): void {
    if (this.clientReadDone) return;
    this.clientReadDone = true;
    this.firstFin ??= "client";
    // With the other direction already done, afterFin closes both sockets, and the close sends
    // the same FIN: a shutdown first would be one more syscall per connection for nothing.
    if (!this.serverReadDone) this.up.shutdown();
    this.afterFin();
  }

  serverFin(): void {
    if (this.serverReadDone) return;
    this.serverReadDone = true;
    this.firstFin ??= "server";
    if (!this.clientReadDone) this.down.shutdown();
    this.afterFin();
  }

  private afterFin(): void {
    if (this.clientReadDone && this.serverReadDone) {
      this.disarmHalfClosed();
      // Both directions are done: close each socket once its queue has flushed.
      this.down.end();
      this.up.end();
    } else if (this.halfSeenBytes < 0) {
      this.armHalfClosed();
    }
  }

  /**
   * One direction has ended. The tunnel may stay half-open as long as the other keeps moving
   * bytes; it is cut after `halfClosedTimeoutMs` without any (HAProxy's client-fin/server-fin
   * are inactivity timeouts too).
   */
  private armHalfClosed(): void {
    this.halfSeenBytes = this.moved();
    this.deadlineMs = nowMs() + this.options.halfClosedTimeoutMs;
    this.halfClosedSlot = deadlinesFor(this.options.halfClosedTimeoutMs).add(this);
  }

  private disarmHalfClosed(): void {
    if (this.halfSeenBytes < 0) return;
    this.halfSeenBytes = -1;
    deadlinesFor(this.options.halfClosedTimeoutMs).delete(this.halfClosedSlot, this);
  }

  /** The half-closed deadline passed (from the shared sweep): cut, unless bytes moved since. */
  expire(): void {
    if (this.finished || this.halfSeenBytes < 0) return;
    if (this.moved() === this.halfSeenBytes) return this.abort("half-closed-timeout");
    this.armHalfClosed();
  }

  /**
   * The client socket is gone. Without an error after we had shut down its write side, this is
   * its FIN arriving (Bun reports a FIN after our own shutdown as close). Otherwise it closed or
   * reset while the server may still have had data for it: the server gets what the client sent
   * (our queue flushed, then a FIN after what the kernel still holds for it), and what it still
   * sends is read and dropped until its FIN (a lingering close). A plain close over the bytes it
   * sent that nobody read (the side was paused for the client) would reset it, and the reset
   * destroys what the kernel had not delivered yet: megabytes on loopback (found by an audit).
   * After the tunnel has finished (abort) the close is the cut's own.
   */
  clientGone(err: Error | undefined): void {
    if (this.finished) return;
    this.clientClosed = true;
    if (!err && this.serverReadDone) {
      this.clientFin();
    } else {
      this.termination ??= err ? faultTermination(err, "client-reset") : "client-close";
      this.clientReadDone = true;
      this.up.endLingering();
    }
    this.maybeFinish(false);
  }

  serverGone(err: Error | undefined): void {
    if (this.finished) return;
    this.serverClosed = true;
    if (!err && this.clientReadDone) {
      this.serverFin();
    } else {
      this.termination ??= err ? faultTermination(err, "server-reset") : "server-close";
      this.serverReadDone = true;
      this.down.endLingering();
    }
    this.maybeFinish(false);
  }

  /**
   * The idle or half-closed check threw (lib/fault.ts), and the tunnel is out of that check's
   * set: it is cut as after a socket event's fault, and ends `internal`.
   */
  faulted(err: unknown): void {
    if (!this.finished) this.termination = "internal";
    (this.down.closed ? this.up : this.down).fault(err, "timer");
  }

  /** Called by the sweeper every idle-limit / INACTIVITY_CHECKS. */
  checkIdle(): void {
    if (stalled(this, this.moved())) this.abort("idle-timeout");
  }

  /**
   * What the inactivity limits watch: bytes read from either side plus bytes delivered to
   * either side (read minus still queued). Both only grow, so this moves whenever a byte is read
   * or a queued byte reaches the kernel: a slow reader draining our queue, while the other side
   * is paused for it, is a tunnel moving bytes, not an idle one.
   */
  private moved(): number {
    const read = this.bytesUp + this.bytesDown;
    return 2 * read - this.up.queuedBytes - this.down.queuedBytes;
  }

  private maybeFinish(force: boolean): void {
    if (this.finished) return;
    if (!force && !(this.clientClosed && this.serverClosed)) return;
    this.finished = true;
    this.sweeper?.delete(this.idleSlot, this);
    this.disarmHalfClosed();
    this.termination ??= this.firstFin === "server" ? "server-fin" : "client-fin";
    this.owner.relayDone(this, this.token);
  }
}

/** Event adapters: one small object per side per tunnel, allocated once at start. */
class ClientSide implements ConnEvents {
  constructor(private readonly relay: Relay) {}
  onData(chunk: Uint8Array): void {
    this.relay.fromClient(chunk);
  }
  onEnd(): void {
    this.relay.clientFin();
  }
  onDrain(): void {
    this.relay.downstreamDrained();
  }
  onClose(err?: Error): void {
    this.relay.clientGone(err);
  }
}

class ServerSide implements ConnEvents {
  constructor(private readonly relay: Relay) {}
  onData(chunk: Uint8Array): void {
    this.relay.fromServer(chunk);
  }
  onEnd(): void {
    this.relay.serverFin();
  }
  onDrain(): void {
    this.relay.upstreamDrained();
  }
  onClose(err?: Error): void {
    this.relay.serverGone(err);
  }
}
