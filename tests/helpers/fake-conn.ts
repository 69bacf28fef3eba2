/**
 * A Conn for in-process tests of what sits on top of the runtime ports (relay, sessions): every
 * call is recorded, what is written is kept, and the test plays the peer and the kernel.
 */
import { FaultError, type FaultSite, reportFault } from "../../lib/fault.ts";
import type { Conn, ConnEvents } from "../../lib/runtime/types.ts";

export interface ScriptedConnOptions {
  /** The kernel takes nothing: every write stays queued until `deliver` (default: takes all). */
  queueWrites?: boolean;
  /** end/endLingering/destroy/fault close it at once and call onClose, as Bun does (default true). */
  closes?: boolean;
}

export class ScriptedConn implements Conn {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 40000;
  readonly localAddress = "127.0.0.1";
  readonly localPort = 4143;
  /** Bytes "the kernel has not taken": set by the test, or grown by writes with queueWrites. */
  queuedBytes = 0;
  /** What was still queued when it closed, as the adapters count it. */
  droppedBytes = 0;
  closed = false;
  paused = false;
  events: ConnEvents | null = null;
  readonly calls: string[] = [];
  readonly written: Uint8Array[] = [];
  private readonly queueWrites: boolean;
  private readonly closes: boolean;

  constructor(options: ScriptedConnOptions = {}) {
    this.queueWrites = options.queueWrites ?? false;
    this.closes = options.closes ?? true;
  }
  setEvents(events: ConnEvents): void {
    this.events = events;
  }
  write(chunk: Uint8Array): boolean {
    this.written.push(chunk.slice());
    if (this.queueWrites) this.queuedBytes += chunk.byteLength;
    return this.queuedBytes === 0;
  }
  writeFrom(buf: Uint8Array, start: number, end: number): boolean {
    return this.write(buf.subarray(start, end));
  }
  /** The peer read n bytes: they leave the queue. */
  deliver(n: number): void {
    this.queuedBytes -= n;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  shutdown(): void {
    this.calls.push("shutdown");
  }
  end(): void {
    this.close("end");
  }
  endLingering(): void {
    this.close("endLingering");
  }
  destroy(): void {
    this.close("destroy");
  }
  fault(err: unknown, site: FaultSite): void {
    reportFault(err, site);
    this.close("fault", new FaultError(err));
  }
  /** What was written, as text. */
  text(): string {
    return this.written.map((b) => new TextDecoder("latin1").decode(b)).join("");
  }
  private close(how: string, err?: Error): void {
    this.calls.push(how);
    if (this.closed || !this.closes) return;
    this.closed = true;
    this.droppedBytes += this.queuedBytes;
    this.queuedBytes = 0;
    this.events?.onClose(err);
  }
}
