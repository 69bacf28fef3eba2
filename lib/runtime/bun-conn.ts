/**
 * The Bun adapter's Conn (lib/runtime/types.ts) over one `Bun.Socket`: writes that the kernel
 * takes in part, queued and resumed in `drain`; pause and resume; half-close; the lingering
 * close (Lingering). The sockets, their handlers, listen, connect and resolve are bun.ts; the
 * Bun facts both rely on are listed there.
 */
import { FaultError, type FaultSite, reportFault } from "../fault.ts";
import { FlushTimeout, startFlushClock } from "./flush.ts";
import { type LingerClock, startLingering } from "./linger.ts";
import { enqueue } from "./write-queue.ts";
import type { IdleDeadline } from "../sweep.ts";
import type { Conn, ConnEvents, ListenOptions } from "./types.ts";

/** What a socket's `data` is, for the shared handlers: its BunConn, or its Lingering at the end. */
export interface SocketOwner {
  gotData(chunk: Uint8Array): void;
  gotEnd(): void;
  gotError(err: Error): void;
  gotClose(err?: Error): void;
  flush(): void;
  fault(err: unknown, site: FaultSite): void;
}

export type BunSocket = Bun.Socket<SocketOwner | undefined>;

interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/**
 * The peer's address and port. Bun has none (`undefined`) for a socket its peer has already
 * reset (connect, then an RST, before the accept was handled): "" and 0 then.
 */
function peerOf(socket: BunSocket): Endpoint {
  return { address: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
}

type HeldEvent = ["onData", Uint8Array] | ["onEnd", undefined] | ["onClose", Error | undefined];

export class BunConn implements Conn, SocketOwner {
  queuedBytes = 0;
  droppedBytes = 0;
  closed = false;
  /** null until the owner calls setEvents; what arrives before is held (rare: connect races). */
  private events: ConnEvents | null = null;
  private held: HeldEvent[] | null = null;
  // Allocated on the first partial write only: an idle tunnel costs no queue arrays.
  private queue: Uint8Array[] | null = null;
  private shutdownPending = false;
  private endPending = false;
  /** end() lingers (endLingering) unless the peer's FIN has come. */
  private linger = false;
  private writeShut = false;
  /** The peer's FIN came: everything it sent has been read, so a close sends no reset. */
  private peerEnded = false;
  private paused = false;
  private error: Error | undefined;
  /** Whether Bun calls `drain` for this socket (see queueRest). */
  private drainArmed: boolean;
  /** endLingering() while bytes are queued: resets the socket if they stop draining (flush.ts). */
  private flushClock: IdleDeadline | null = null;

  /**
   * Each Bun address getter is a syscall (getpeername/getsockname), and a short connection is
   * mostly syscalls: the peer of an accepted socket is read at accept only when it is wanted
   * after close (ListenOptions.peerAtAccept: logs, /connections; Bun no longer reports it
   * then); everything else only when asked (policy, X-Forwarded-For, the SOCKS reply's local
   * address), while the socket is open. The local address is not kept: it is asked for once (the
   * SOCKS reply's BND.ADDR), and kept it would stay on the heap for the tunnel's life.
   */
  private remote: Endpoint | null;

  constructor(
    private readonly socket: BunSocket,
    accepted: boolean,
    peerAtAccept: boolean,
  ) {
    this.remote = peerAtAccept ? peerOf(socket) : null;
    this.drainArmed = accepted;
  }

  get remoteAddress(): string {
    return (this.remote ??= peerOf(this.socket)).address;
  }
  get remotePort(): number {
    return (this.remote ??= peerOf(this.socket)).port;
  }
  get localAddress(): string {
    return this.socket.localAddress;
  }
  get localPort(): number {
    return this.socket.localPort;
  }

  setEvents(events: ConnEvents): void {
    this.events = events;
    const held = this.held;
    if (held === null) return;
    this.held = null;
    for (const [name, arg] of held) {
      if (name === "onData") events.onData(arg);
      else if (name === "onEnd") events.onEnd();
      else events.onClose(arg);
    }
  }

  private hold(event: HeldEvent): void {
    (this.held ??= []).push(event);
  }

  write(chunk: Uint8Array): boolean {
    if (this.closed || this.writeShut) return false;
    if (this.queuedBytes > 0) {
      enqueue(this.queue!, chunk);
      this.queuedBytes += chunk.byteLength;
      return false;
    }
    const n = this.socket.write(chunk);
    if (n === chunk.byteLength) return true;
    if (n < 0) return false; // closing: the close event follows
    return this.queueRest(chunk.subarray(n));
  }

  writeFrom(buf: Uint8Array, start: number, end: number): boolean {
    if (this.closed || this.writeShut) return false;
    if (this.queuedBytes > 0) return this.write(buf.slice(start, end));
    // Bun writes the range itself (write(data, byteOffset, byteLength)): no view is made.
    const n = this.socket.write(buf, start, end - start);
    if (n === end - start) return true;
    if (n < 0) return false; // closing: the close event follows
    return this.queueRest(buf.slice(start + n, end));
  }

  /**
   * What the kernel did not take waits for `drain`, which Bun must now call for this socket
   * (connected sockets get their drain handler here: see the file's notes).
   */
  private queueRest(rest: Uint8Array): false {
    if (!this.drainArmed) {
      this.drainArmed = true;
      this.socket.reload({ socket: COMMON_HANDLERS });
    }
    enqueue((this.queue ??= []), rest);
    this.queuedBytes += rest.byteLength;
    return false;
  }

  /** `drain` from Bun: flush our queue; tell the owner once it is empty. */
  flush(): void {
    const queue = this.queue;
    if (queue === null || queue.length === 0) return;
    while (queue.length > 0) {
      const head = queue[0]!;
      const n = this.socket.write(head);
      if (n < 0) return;
      this.queuedBytes -= n;
      if (n > 0) this.flushClock?.touch();
      if (n < head.byteLength) {
        queue[0] = head.subarray(n);
        return;
      }
      queue.shift();
    }
    this.afterFlush();
    this.events?.onDrain();
  }

  private afterFlush(): void {
    if (this.endPending) this.closeNow();
    else if (this.shutdownPending) this.doShutdown();
  }

  private doShutdown(): void {
    this.shutdownPending = false;
    if (this.writeShut || this.closed) return;
    this.writeShut = true;
    this.socket.shutdown();
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.socket.resume();
  }

  shutdown(): void {
    if (this.closed || this.writeShut) return;
    if (this.queuedBytes > 0) this.shutdownPending = true;
    else this.doShutdown();
  }

  end(): void {
    if (this.closed) return;
    if (this.queuedBytes === 0) return this.closeNow();
    this.endPending = true;
    // An answer's close is bounded (flush.ts); a tunnel's end is bounded by its relay.
    if (this.linger) this.flushClock ??= startFlushClock(() => this.flushTimedOut());
  }

  private flushTimedOut(): void {
    if (this.closed) return;
    this.error = new FlushTimeout(this.queuedBytes);
    this.destroy();
  }

  endLingering(): void {
    this.linger = true;
    this.end();
  }

  /**
   * Our queue is empty. After the peer's FIN a close is clean; before it, endLingering's socket
   * lingers: half-closed (our FIN follows what the kernel still has to send), read and dropped
   * until the peer's FIN. To the owner the connection is closed now either way (onClose, as
   * close() does).
   */
  private closeNow(): void {
    this.flushClock?.stop();
    const socket = this.socket;
    const clock = this.peerEnded || !this.linger ? null : startLingering(() => socket.close());
    if (clock === null) return socket.close();
    new Lingering(socket, clock, !this.writeShut, this.paused); // takes over socket.data
    this.gotClose(undefined);
  }

  destroy(): void {
    if (this.closed) return;
    this.queue = null;
    this.droppedBytes += this.queuedBytes;
    this.queuedBytes = 0;
    this.socket.terminate();
  }

  // --- called from the Bun handlers below ---
  gotData(chunk: Uint8Array): void {
    if (this.events) this.events.onData(chunk);
    else this.hold(["onData", chunk]);
  }
  gotEnd(): void {
    this.peerEnded = true;
    if (this.events) this.events.onEnd();
    else this.hold(["onEnd", undefined]);
  }
  gotError(err: Error): void {
    this.error ??= err;
  }
  gotClose(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.flushClock?.stop();
    this.queue = null;
    this.droppedBytes += this.queuedBytes;
    this.queuedBytes = 0;
    // A fault's or the flush limit's error wins over whatever Bun reports for the reset that followed it.
    const reason = this.error instanceof FaultError || this.error instanceof FlushTimeout ? this.error : (err ?? this.error);
    if (this.events) this.events.onClose(reason);
    else this.hold(["onClose", reason]);
  }

  /**
   * Our code threw while handling this socket's event (lib/fault.ts): report it, and reset the
   * socket; its owner then hears onClose with a FaultError and tidies up as for any reset.
   */
  fault(err: unknown, site: FaultSite): void {
    reportFault(err, site);
    if (this.closed) return;
    this.error = new FaultError(err);
    try {
      this.destroy(); // Bun runs `close`, and so the owner's onClose, before this returns
    } catch (again) {
      reportFault(again, "close");
    }
  }
}

/**
 * A socket its owner has ended before the peer's FIN (BunConn.closeNow): half-closed, it reads
 * and drops what the peer sends until the peer's FIN, then closes (RFC 9112 §9.6, nginx
 * lingering_close); its LingerClock (lib/runtime/linger.ts) closes it anyway after
 * LINGER_IDLE_MS without a byte, or LINGER_MAX_MS in all.
 */
class Lingering implements SocketOwner {
  constructor(
    private readonly socket: BunSocket,
    private readonly clock: LingerClock,
    shutdown: boolean,
    paused: boolean,
  ) {
    socket.data = this;
    if (shutdown) socket.shutdown();
    if (paused) socket.resume();
  }

  gotData(): void {
    this.clock.touch();
  }
  gotEnd(): void {
    this.socket.close();
  }
  gotError(): void {}
  gotClose(): void {
    this.clock.stop();
  }
  flush(): void {}
  fault(err: unknown, site: FaultSite): void {
    reportFault(err, site);
    this.socket.terminate();
  }
}

/** Bun already sets TCP_NODELAY on accepted and connected sockets (checked with strace). */
export function attach(socket: BunSocket, accepted: boolean, peerAtAccept = false): BunConn {
  const conn = new BunConn(socket, accepted, peerAtAccept);
  socket.data = conn;
  return conn;
}

// Shared handler objects: one allocation for the process, not one per connection. Each event
// runs inside a fault barrier (lib/fault.ts): left to Bun, an exception thrown by a handler goes
// to `error` and the socket stays open.
export const COMMON_HANDLERS = {
  binaryType: "uint8array" as const,
  data(socket: BunSocket, chunk: Uint8Array) {
    const conn = socket.data;
    if (conn === undefined) return;
    try {
      conn.gotData(chunk);
    } catch (err) {
      conn.fault(err, "data");
    }
  },
  drain(socket: BunSocket) {
    const conn = socket.data;
    if (conn === undefined) return;
    try {
      conn.flush();
    } catch (err) {
      conn.fault(err, "drain");
    }
  },
  end(socket: BunSocket) {
    const conn = socket.data;
    if (conn === undefined) return;
    try {
      conn.gotEnd();
    } catch (err) {
      conn.fault(err, "end");
    }
  },
  error(socket: BunSocket, err: Error) {
    socket.data?.gotError(err);
  },
  close(socket: BunSocket, err?: Error) {
    try {
      socket.data?.gotClose(err);
    } catch (fault) {
      reportFault(fault, "close"); // the socket is gone already
    }
  },
};
