/**
 * The Deno side of the Conn port (lib/runtime/types.ts): one `Deno.TcpConn` driven by a
 * `read()` loop and a write queue with one writer. Used by lib/runtime/deno.ts.
 *
 * Facts this file relies on (Deno 2.9.6, measured; see shared/RUNTIME-NOTES.md):
 * - `conn.readable` closes the whole socket at EOF (it truncated a 5 MB echo), so reads are a
 *   plain `conn.read(buf)` loop: `null` is the peer's FIN and the socket stays writable.
 * - `conn.write` is async and may take only part of a chunk; two writes must not overlap, so
 *   one writer loop owns the socket's write side and everything else goes through the queue.
 * - `conn.closeWrite()` is the real half-close (shutdown(2) SHUT_WR); reads go on afterwards.
 * - A pending `read` rejects (Interrupted / BadResource) when we close the socket ourselves;
 *   those rejections are ours and are not reported as errors.
 * - Deno errors carry an errno `code` (ECONNREFUSED, EPIPE, ...) that lib/errors.ts maps.
 *
 * Deno's types are not visible to tsc here (the project typechecks with bun-types), so the few
 * members used are declared below; `deno check` sees the real globals and accepts the casts.
 */
import { unmapIPv4 } from "../address.ts";
import { FaultError, type FaultSite, reportFault } from "../fault.ts";
import { type IdleDeadline, SweptSet } from "../sweep.ts";
import { FlushTimeout, startFlushClock } from "./flush.ts";
import { type LingerClock, startLingering } from "./linger.ts";
import type { Conn, ConnEvents } from "./types.ts";
import { enqueue } from "./write-queue.ts";

export interface DenoNetAddr {
  readonly hostname: string;
  readonly port: number;
}

/** The part of `Deno.TcpConn` this adapter uses. */
export interface DenoTcpConn {
  readonly localAddr: DenoNetAddr;
  readonly remoteAddr: DenoNetAddr;
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay(noDelay?: boolean): void;
}

/**
 * Read buffer sizes. A pending read pins its buffer, and an idle connection always has one
 * pending, so it starts small (4096 idle conns = 16 MiB) and doubles while reads fill it.
 * The cap is set by memory, not throughput: every chunk is a fresh ArrayBuffer, which V8 frees
 * at young-generation GCs; those run per JS-heap allocation (a few objects per read), so bigger
 * chunks leave more dead buffers between GCs. Measured, the proxy under the slow reader of
 * tests/reverse-tcp.e2e.test.ts (256 MiB): cap 16 KiB +44 MiB RSS, 32 KiB +72 MiB, 128 KiB
 * +75 MiB; relaying 1 GiB in one process: ~0.9 GiB/s at 16 KiB, ~1.1 GiB/s at 32 KiB.
 */
const MIN_READ_BYTES = 4 * 1024;
const MAX_READ_BYTES = 16 * 1024;
/**
 * A socket nothing reads cannot hear its peer's reset: after the peer's FIN (a read would return
 * EOF again even after a reset) and while it is paused for backpressure. A peer that resets then
 * (SO_LINGER 0, a killed process) went unnoticed until a tunnel limit (an hour by default),
 * holding its connection slot, and the other side of a tunnel got a FIN after a cut upload. A
 * zero-length write sends nothing on a healthy socket and fails (EPIPE) once the peer has reset:
 * unread sockets with nothing queued are probed so every PROBE_UNREAD_MS (one shared interval,
 * lib/sweep.ts). Bun hears the reset from its event loop.
 */
const PROBE_UNREAD_MS = 1_000;
const NOTHING = new Uint8Array(0);
const unreadSockets = new SweptSet<DenoConn>(PROBE_UNREAD_MS, (conn, _now, set, slot) => {
  if (!conn.probeUnread()) set.delete(slot, conn);
});

/**
 * Small chunks queued behind each other (a reply head, then its body) go out in one write (one
 * op, one segment). Only small ones: joining bulk chunks would copy and allocate per chunk.
 */
const SMALL_CHUNK_BYTES = 2 * 1024;
const MAX_COALESCE_BYTES = 16 * 1024;

/** Records events that arrive before the owner calls setEvents, to replay them in order. */
class HeldEvents implements ConnEvents {
  readonly calls: Array<[keyof ConnEvents, unknown]> = [];
  onData(chunk: Uint8Array): void {
    this.calls.push(["onData", chunk]);
  }
  onEnd(): void {
    this.calls.push(["onEnd", undefined]);
  }
  onDrain(): void {
    // Nothing is queued before an owner exists: no one waits for drain.
  }
  onClose(err?: Error): void {
    this.calls.push(["onClose", err]);
  }
}

export class DenoConn implements Conn {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  queuedBytes = 0;
  droppedBytes = 0;
  closed = false;
  private events: ConnEvents = new HeldEvents();
  private readonly queue: Uint8Array[] = [];
  private shutdownPending = false;
  private endPending = false;
  private writeShut = false; // closeWrite requested
  private writeShutDone = false; // closeWrite completed
  private readEnded = false; // peer FIN seen
  /** end() lingers (endLingering) unless the peer's FIN has come. */
  private linger = false;
  /** Set while closed for the owner but still reading and dropping until the peer's FIN (endLingering). */
  private lingering: LingerClock | null = null;
  private paused = false;
  /** In unreadSockets (at most once). */
  private probed = false;
  private wakeReader: (() => void) | null = null;
  /** endLingering() while bytes are queued: closes the socket if they stop draining (flush.ts; Deno has no reset). */
  private flushClock: IdleDeadline | null = null;

  /** `unmap`: the socket is a dual-stack `::` serving an IPv4 listener (see deno.ts). */
  constructor(
    private readonly raw: DenoTcpConn,
    unmap = false,
  ) {
    const remote = raw.remoteAddr;
    const local = raw.localAddr;
    this.remoteAddress = unmap ? unmapIPv4(remote.hostname) : remote.hostname;
    this.remotePort = remote.port;
    this.localAddress = unmap ? unmapIPv4(local.hostname) : local.hostname;
    this.localPort = local.port;
    try {
      raw.setNoDelay(true);
    } catch {
      // Already reset by the peer: the read loop reports it.
    }
    void this.readLoop();
  }

  setEvents(events: ConnEvents): void {
    const held = this.events;
    this.events = events;
    if (!(held instanceof HeldEvents)) return;
    for (const [name, arg] of held.calls) {
      if (name === "onData") events.onData(arg as Uint8Array);
      else if (name === "onEnd") events.onEnd();
      else if (name === "onClose") events.onClose(arg as Error | undefined);
    }
  }

  /** Always queues (Deno writes are async): true only for an empty chunk with nothing queued. */
  write(chunk: Uint8Array): boolean {
    if (this.closed || this.writeShut) return false;
    if (chunk.byteLength === 0) return this.queue.length === 0;
    // The writer runs while anything is queued: start one only for an empty queue (a small
    // chunk may be merged into the head that is being written, leaving the length at 1).
    const idle = this.queue.length === 0;
    enqueue(this.queue, chunk);
    this.queuedBytes += chunk.byteLength;
    if (idle) void this.writeLoop();
    return false;
  }

  /** Deno writes asynchronously: the range is copied at once. */
  writeFrom(buf: Uint8Array, start: number, end: number): boolean {
    return this.write(buf.slice(start, end));
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.watchUnread();
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.wake();
  }

  shutdown(): void {
    if (this.closed || this.writeShut) return;
    if (this.queue.length > 0) this.shutdownPending = true;
    else this.doShutdown();
  }

  end(): void {
    if (this.closed) return;
    if (this.queue.length === 0) return this.endNow();
    this.endPending = true;
    // An answer's close is bounded (flush.ts); a tunnel's end is bounded by its relay.
    if (this.linger) this.flushClock ??= startFlushClock(() => this.finish(new FlushTimeout(this.queuedBytes)));
  }

  endLingering(): void {
    this.linger = true;
    this.end();
  }

  /** The queue is empty: close, or (endLingering, no FIN from the peer yet) linger. */
  private endNow(): void {
    this.flushClock?.stop();
    this.lingering = this.readEnded || !this.linger ? null : startLingering(() => this.stopLingering());
    if (this.lingering === null) return this.finish(undefined);
    if (!this.writeShut) {
      this.writeShut = true;
      this.raw.closeWrite().catch(() => this.stopLingering());
    }
    this.paused = false;
    this.finish(undefined); // for the owner; the read loop goes on while lingering
  }

  private stopLingering(): void {
    const clock = this.lingering;
    if (clock === null) return;
    this.lingering = null;
    clock.stop();
    try {
      this.raw.close();
    } catch {
      // Already closed by Deno.
    }
  }

  destroy(): void {
    this.finish(undefined);
  }

  /** One writer: the queue's head stays queued (and counted) until the kernel has taken it. */
  private async writeLoop(): Promise<void> {
    const queue = this.queue;
    try {
      while (queue.length > 0) {
        const data = this.nextWrite();
        const n = await this.raw.write(data);
        if (this.closed) return;
        this.consume(n);
      }
    } catch (err) {
      return this.finish(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.endPending) return this.endNow();
    if (this.shutdownPending) this.doShutdown();
    if (this.closed) return;
    try {
      this.events.onDrain();
    } catch (err) {
      this.fault(err, "drain");
    }
  }

  /** The head chunk, or the first few small chunks copied into one buffer. */
  private nextWrite(): Uint8Array {
    const queue = this.queue;
    const head = queue[0]!;
    if (queue.length === 1 || head.byteLength > SMALL_CHUNK_BYTES) return head;
    let count = 0;
    let bytes = 0;
    while (count < queue.length) {
      const size = queue[count]!.byteLength;
      if (size > SMALL_CHUNK_BYTES || bytes + size > MAX_COALESCE_BYTES) break;
      bytes += size;
      count++;
    }
    if (count <= 1) return head;
    const joined = new Uint8Array(bytes);
    let offset = 0;
    for (const part of queue.splice(0, count, joined)) {
      joined.set(part, offset);
      offset += part.byteLength;
    }
    return joined;
  }

  private consume(n: number): void {
    const head = this.queue[0]!;
    this.queuedBytes -= n;
    if (n > 0) this.flushClock?.touch();
    if (n < head.byteLength) this.queue[0] = head.subarray(n);
    else this.queue.shift();
  }

  private doShutdown(): void {
    this.shutdownPending = false;
    if (this.writeShut || this.closed) return;
    this.writeShut = true;
    this.raw.closeWrite().then(
      () => {
        this.writeShutDone = true;
        // Both directions are done: the socket is finished (Bun reports this as close too).
        if (this.readEnded) this.finish(undefined);
      },
      (err: unknown) => this.finish(err instanceof Error ? err : new Error(String(err))),
    );
  }

  private async readLoop(): Promise<void> {
    let buffer = new Uint8Array(MIN_READ_BYTES);
    while (!this.closed || this.lingering !== null) {
      if (this.paused) {
        await new Promise<void>((resolve) => (this.wakeReader = resolve));
        continue;
      }
      let n: number | null;
      try {
        n = await this.raw.read(buffer);
      } catch (err) {
        if (this.lingering !== null) return this.stopLingering();
        // After our own close the pending read is cancelled: not an error of the connection.
        return this.finish(err instanceof Error ? err : new Error(String(err)));
      }
      if (this.lingering !== null) {
        if (n === null) return this.stopLingering();
        this.lingering.touch();
        continue; // dropped
      }
      if (this.closed) return;
      if (n === null) return this.peerEnded();
      if (n === 0) continue;
      // A full buffer is handed over as is (and replaced, bigger); a partial one is copied out,
      // so the receiver owns every chunk and a small chunk does not pin a big buffer.
      let chunk: Uint8Array;
      if (n === buffer.byteLength) {
        chunk = buffer;
        buffer = new Uint8Array(Math.min(MAX_READ_BYTES, buffer.byteLength * 2));
      } else {
        chunk = buffer.slice(0, n);
      }
      try {
        this.events.onData(chunk);
      } catch (err) {
        return this.fault(err, "data");
      }
    }
  }

  private watchUnread(): void {
    if (this.probed) return;
    this.probed = true;
    unreadSockets.add(this);
  }

  /**
   * From unreadSockets: a zero-length write while nothing reads the socket (the peer's FIN came,
   * or it is paused outside a lingering close); false once that is over or it cannot be probed.
   */
  probeUnread(): boolean {
    const unread = this.readEnded || (this.paused && this.lingering === null);
    if (this.closed || this.writeShut || !unread) {
      this.probed = false;
      return false;
    }
    // A pending write fails by itself on a reset.
    if (this.queue.length === 0) this.raw.write(NOTHING).catch((err: unknown) => this.finish(err instanceof Error ? err : new Error(String(err))));
    return true;
  }

  private peerEnded(): void {
    this.readEnded = true;
    if (!this.writeShut) this.watchUnread();
    try {
      this.events.onEnd();
    } catch (err) {
      return this.fault(err, "end");
    }
    if (!this.closed && this.writeShutDone) this.finish(undefined);
  }

  /**
   * Our code threw while handling this socket's event (lib/fault.ts): report it and close the
   * socket; its owner then hears onClose with a FaultError and tidies up as for any reset.
   * (Outside this barrier the read or write loop's promise would reject and Deno would exit.)
   */
  fault(err: unknown, site: FaultSite): void {
    reportFault(err, site);
    this.finish(new FaultError(err));
  }

  private wake(): void {
    const wake = this.wakeReader;
    this.wakeReader = null;
    wake?.();
  }

  /** The socket is gone (or lingers, endNow): close it, drop the queue, tell the owner once. */
  private finish(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.flushClock?.stop();
    this.queue.length = 0;
    this.droppedBytes += this.queuedBytes;
    this.queuedBytes = 0;
    if (this.lingering === null) {
      try {
        this.raw.close();
      } catch {
        // Already closed by Deno (BadResource): nothing left to release.
      }
    }
    this.wake(); // a paused read loop exits
    try {
      this.events.onClose(err);
    } catch (fault) {
      reportFault(fault, "close"); // the socket is gone already
    }
  }
}
