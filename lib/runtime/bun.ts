/**
 * Bun adapter for the runtime ports (lib/runtime/types.ts), on `Bun.listen` / `Bun.connect`.
 *
 * Facts this file relies on (measured, see shared/RUNTIME-NOTES.md):
 * - `socket.write` takes what the kernel takes and returns the count (or -1 once closed); the
 *   rest is ours to queue and resume in `drain`, which may also fire with nothing queued.
 * - `allowHalfOpen: true` is required on both sides, or a peer FIN closes the socket.
 * - `shutdown()` is the real half-close; `end()` and `close()` close the whole socket and run
 *   `close` synchronously, so they are only called once our queue is empty. `close()` is used:
 *   `end()` also clears TCP_CORK first, one more syscall per socket (Bun never corks these).
 *   Either sends a FIN, or an RST when unread bytes are left, as close(2) does; bytes that
 *   arrive after it get an RST too, and the peer loses what it had not read: Conn.endLingering
 *   closes at once only after the peer's FIN, and otherwise lingers (Lingering, below).
 * - The `open` handler runs before the `Bun.connect` promise resolves, and `data` can follow
 *   before the caller installs its events: those are held and replayed by `setEvents`.
 * - With a `drain` handler, the writable event that follows each FIN Bun reads costs a
 *   `setsockopt(TCP_CORK)` and a call into JS (strace). Connected sockets therefore start
 *   without one and get it, by `socket.reload` (per socket for `Bun.connect`), on their first
 *   partial write. Accepted sockets share the listener's handlers, which have it.
 */
import { ProxyError, lookupFailure } from "../errors.ts";
import { FaultError, type FaultSite, reportFault } from "../fault.ts";
import { flushStdout, writeStdout } from "./bun-stdout.ts";
import { readFdLimit } from "./fd-limit.ts";
import { FlushTimeout, startFlushClock } from "./flush.ts";
import { type LingerClock, startLingering } from "./linger.ts";
import { PendingConnect } from "./pending-connect.ts";
import { enqueue } from "./write-queue.ts";
import type { IdleDeadline } from "../sweep.ts";
import type { Conn, ConnEvents, ConnectOptions, ListenOptions, Listener, Runtime } from "./types.ts";

/** What a socket's `data` is, for the shared handlers: its BunConn, or its Lingering at the end. */
interface SocketOwner {
  gotData(chunk: Uint8Array): void;
  gotEnd(): void;
  gotError(err: Error): void;
  gotClose(err?: Error): void;
  flush(): void;
  fault(err: unknown, site: FaultSite): void;
}

type BunSocket = Bun.Socket<SocketOwner | undefined>;

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

class BunConn implements Conn, SocketOwner {
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
   * address), while the socket is open.
   */
  private remote: Endpoint | null;
  private local: Endpoint | null = null;

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
    return (this.local ??= { address: this.socket.localAddress, port: this.socket.localPort }).address;
  }
  get localPort(): number {
    return (this.local ??= { address: this.socket.localAddress, port: this.socket.localPort }).port;
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
function attach(socket: BunSocket, accepted: boolean, peerAtAccept = false): BunConn {
  const conn = new BunConn(socket, accepted, peerAtAccept);
  socket.data = conn;
  return conn;
}

// Shared handler objects: one allocation for the process, not one per connection. Each event
// runs inside a fault barrier (lib/fault.ts): left to Bun, an exception thrown by a handler goes
// to `error` and the socket stays open.
const COMMON_HANDLERS = {
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

const { drain: _drain, ...HANDLERS_WITHOUT_DRAIN } = COMMON_HANDLERS;

// Until `open`, a connecting socket's data is its PendingConnect; `attach` then replaces it.
// No `drain` until the first partial write (BunConn.queueRest).
const CONNECT_HANDLERS = {
  ...HANDLERS_WITHOUT_DRAIN,
  open(socket: BunSocket) {
    const pending = socket.data as unknown as PendingConnect;
    const conn = attach(socket, false); // replaces socket.data
    try {
      pending.opened(conn);
    } catch (err) {
      conn.fault(err, "connect");
    }
  },
  connectError(socket: BunSocket, err: Error) {
    try {
      (socket.data as unknown as PendingConnect).failed(err);
    } catch (fault) {
      reportFault(fault, "connect");
    }
  },
};

function listen(options: ListenOptions): Listener {
  const peerAtAccept = options.peerAtAccept ?? true;
  // `ipv6Only` is honoured by Bun.listen but missing from bun-types' listen options.
  const listenOptions: Bun.TCPSocketListenOptions<BunConn | undefined> & { ipv6Only: boolean } = {
    hostname: options.hostname,
    port: options.port,
    allowHalfOpen: true,
    // "::" must not also claim IPv4, or binding "0.0.0.0" and "::" on one port collides.
    ipv6Only: options.hostname.includes(":"),
    data: undefined,
    socket: {
      ...COMMON_HANDLERS,
      open(socket: BunSocket) {
        const conn = attach(socket, true, peerAtAccept);
        // Reset by its client before we got to it (no peer address, peerOf): nothing to serve or
        // log (Deno never hands these over either). Read from what attach took, not asked again.
        if (peerAtAccept && conn.remoteAddress === "") {
          socket.data = undefined;
          return socket.terminate();
        }
        try {
          options.onAccept(conn);
        } catch (err) {
          conn.fault(err, "accept");
        }
      },
    },
  };
  const server = Bun.listen<BunConn | undefined>(listenOptions);
  return {
    hostname: options.hostname,
    port: server.port,
    stop: () => server.stop(false),
  };
}

function connect(options: ConnectOptions, done: (result: Conn | ProxyError) => void): void {
  const pending = PendingConnect.start(options, done);
  if (!pending) return;
  try {
    // No handler on the returned promise: `open` or `connectError` settles the PendingConnect
    // (and with a `connectError` handler Bun rejects the promise as handled). A `.then` pair
    // cost 1-2 % of the TCP connection rate (A/B in bench/RESULTS.md); the connect deadline
    // still bounds a dial that neither handler reports.
    void Bun.connect<BunConn | undefined>({
      hostname: options.hostname,
      port: options.port,
      allowHalfOpen: true,
      data: pending as unknown as undefined,
      socket: CONNECT_HANDLERS,
    });
  } catch (err) {
    queueMicrotask(() => pending.failed(err)); // `done` never runs before connect returns
  }
}

async function resolve(hostname: string): Promise<string[]> {
  try {
    const results = await Bun.dns.lookup(hostname, {});
    const addresses = results.map((r) => r.address);
    if (addresses.length > 0) return addresses;
  } catch (err) {
    throw lookupFailure(hostname, err);
  }
  throw lookupFailure(hostname);
}

export const bunRuntime: Runtime = { name: "bun", listen, connect, resolve, fdLimit: readFdLimit, writeStdout, flushStdout, gc: () => Bun.gc(true) };
