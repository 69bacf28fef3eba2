/**
 * Runtime ports: the only things the proxy needs from Bun or Deno. The core (sessions, relay,
 * protocol machines) depends on these interfaces; `bun.ts` and `deno.ts` implement them.
 *
 * Contract of a Conn:
 * - `write` never drops bytes: what the kernel does not take is queued and flushed on writable.
 *   It returns true when nothing is left queued (false = back off until `onDrain`).
 * - `onData` chunks are owned by the receiver (fresh buffers; no copy needed to keep them).
 * - `onEnd` is the peer's FIN: the connection stays writable (half-open) until we `shutdown`.
 * - `onClose` fires exactly once, when the socket is gone for any reason, with the error if any.
 * - Events that happen before `setEvents` is called are held and replayed in order.
 */
import type { ProxyError } from "../errors.ts";
import type { FaultSite } from "../fault.ts";

export interface ConnEvents {
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  onDrain(): void;
  onClose(err?: Error): void;
}

export interface Conn {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** Bytes accepted by `write` that the kernel has not taken yet. */
  readonly queuedBytes: number;
  /** Bytes accepted by `write` and never sent: queued when the socket closed or was destroyed. */
  readonly droppedBytes: number;
  readonly closed: boolean;
  setEvents(events: ConnEvents): void;
  /** Sends `chunk`; what cannot be sent now is queued as a view of it (keep it unchanged). True when nothing is queued. */
  write(chunk: Uint8Array): boolean;
  /**
   * Sends buf[start, end); what cannot be sent now is copied, so the caller may reuse `buf` as
   * soon as this returns (a scratch buffer for many writes). True when nothing is queued.
   */
  writeFrom(buf: Uint8Array, start: number, end: number): boolean;
  /** Stop reading (backpressure toward the peer). Idempotent. */
  pause(): void;
  resume(): void;
  /** Half-close: FIN once the queue is flushed; reading continues. Idempotent. */
  shutdown(): void;
  /** Graceful close: flush the queue, then close (a reset instead if unread bytes are left, as close(2)). */
  end(): void;
  /**
   * Lingering close, for a connection that ends with an answer while its peer may still be
   * sending (an HTTP response or error, a SOCKS or CONNECT failure reply): flush the queue,
   * half-close, then read and drop until the peer's FIN (lib/limits.ts LINGER_IDLE_MS,
   * LINGER_MAX_MS), so no reset destroys answer bytes the peer has not read yet. The owner hears
   * onClose as for end(); the lingering socket is no longer its concern. A queue that makes no
   * progress for the flush limit (lib/runtime/flush.ts) is dropped and the socket cut: onClose
   * then carries a FlushTimeout.
   */
  endLingering(): void;
  /** Close now, discarding the queue. */
  destroy(): void;
  /**
   * Our code threw while handling this connection (lib/fault.ts): report it with `site`, then
   * close now; the owner hears onClose with a FaultError (its log line says `internal`).
   */
  fault(err: unknown, site: FaultSite): void;
}

export interface ListenOptions {
  hostname: string;
  port: number;
  /**
   * Read each accepted peer's address at accept, for whoever needs it after the socket closed
   * (the connection log line, /connections). Otherwise it is read on first use, while the
   * socket is open (Bun: two getpeername calls, ~2 us of a short connection; Deno has it free).
   * Default true.
   */
  peerAtAccept?: boolean;
  onAccept(conn: Conn): void;
}

export interface Listener {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting; the promise (if any) settles once the port is released (Deno: a tick later). */
  stop(): void | Promise<void>;
}

export interface ConnectOptions {
  /** An IP address (the core resolves names itself so policy sees the dialled address). */
  hostname: string;
  port: number;
  timeoutMs: number;
  /**
   * Who the connect is charged to while it is abandoned (lib/runtime/pending-connect.ts): the
   * listener's stats, whose connection cap counts it (ListenerStats.abandonedConnects).
   */
  owner?: AbandonedOwner;
}

/** A count of abandoned connects, kept by PendingConnect, and the most it may reach. */
export interface AbandonedOwner {
  abandonedConnects: number;
  /** Its share of the process-wide budget (ABANDONED_CONNECTS_MAX): a new dial past it is refused. */
  readonly abandonedShare: number;
}

export interface Runtime {
  readonly name: "bun" | "deno";
  /** Binds synchronously; throws on EADDRINUSE and the like. */
  listen(options: ListenOptions): Listener;
  /**
   * Opens a connection and calls `done` exactly once, never before `connect` returns: with the
   * open Conn, or with a ProxyError: a kind from `kindFromErrno`, connectFailed (an error without
   * an OS code), connectTimeout, or limitExceeded (the abandoned connects' budget is spent,
   * pending-connect.ts; nothing was dialled). A callback,
   * not a promise: a short connection is mostly syscalls, and the promise layers measured ~5 %
   * of the reverse-TCP connection rate (bench/RESULTS.md).
   */
  connect(options: ConnectOptions, done: (result: Conn | ProxyError) => void): void;
  /** All addresses for a name, IPv6 and IPv4; rejects with `lookupFailure` (errors.ts): dnsFailed, or the OS error's kind. */
  resolve(hostname: string): Promise<string[]>;
  /** Soft limit on open file descriptors, or undefined if unknown. */
  fdLimit(): number | undefined;
  /**
   * Writes a log line to stdout without blocking the event loop (what the OS does not take yet
   * is queued, in order). Never throws. False when the line was not taken: stdout is gone
   * (EPIPE), or LOG_QUEUE_MAX_BYTES (lib/limits.ts) are already waiting for the reader.
   */
  writeStdout(line: string): boolean;
  /**
   * Resolves once every queued log line is written, stdout is gone, or `timeoutMs` has passed:
   * awaited before the process exits, so the last lines ("stopped") are not lost.
   */
  flushStdout(timeoutMs: number): Promise<void>;
  /** Full garbage collection, where the runtime offers one (used when the proxy goes quiet). */
  readonly gc?: () => void;
}
