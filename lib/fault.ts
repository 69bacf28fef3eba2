/**
 * Fault isolation: an exception thrown by our own code (a bug) while handling one connection
 * closes that connection and is logged with its stack; the process and every other connection
 * go on. Go's net/http does the same with a handler's panic.
 *
 * The runtime adapters catch around each socket event they deliver (lib/runtime/bun-conn.ts,
 * deno-conn.ts), the shared timers around each item they visit (lib/sweep.ts: the item is
 * dropped from its timer and closes its connection), and the callbacks of a dial around the
 * client connection they answer (lib/tunnel.ts, the HTTP session); what still escapes
 * (a promise callback, a microtask) reaches the process-wide handlers installed by
 * `catchStrayErrors`, which log it instead of letting the runtime exit. Without this, Bun hands
 * an exception thrown in a socket handler to the socket's `error` handler and keeps the socket
 * open (a silent hang), and Deno exits on the unhandled rejection of the read loop.
 */
/** Where a fault was caught: which event or timer was running. */
export type FaultSite = "accept" | "data" | "end" | "drain" | "close" | "connect" | "timer" | "uncaught" | "unhandled rejection";

export type FaultSink = (err: unknown, site: FaultSite) => void;

/**
 * The error a connection's owner receives in onClose when the connection was closed because of
 * a fault: the relay reports it as the termination `internal`.
 */
export class FaultError extends Error {
  constructor(cause: unknown) {
    super(`internal error: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "FaultError";
  }
}

/** The termination code of a connection closed with `err`: `internal` after a fault. */
export function faultTermination<T extends string>(err: Error | undefined, otherwise: T): T | "internal" {
  return err instanceof FaultError ? "internal" : otherwise;
}

// Until the app installs its logger (and in unit tests of the adapters), faults go to stderr.
let sink: FaultSink = (err, site) => {
  process.stderr.write(`sidecar-proxy: internal error (${site}): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
};

/** Sends faults to `next`; returns the sink it replaces. */
export function onFault(next: FaultSink): FaultSink {
  const previous = sink;
  sink = next;
  return previous;
}

/** Reports a fault; never throws (a failing logger must not take the caller down with it). */
export function reportFault(err: unknown, site: FaultSite): void {
  try {
    sink(err, site);
  } catch {
    // Nothing safer is left to do.
  }
}

let strayHandlersInstalled = false;

/** Process-wide last resort: log what no connection caught, keep serving. Idempotent. */
export function catchStrayErrors(): void {
  if (strayHandlersInstalled) return;
  strayHandlersInstalled = true;
  process.on("uncaughtException", (err: unknown) => reportFault(err, "uncaught"));
  process.on("unhandledRejection", (err: unknown) => reportFault(err, "unhandled rejection"));
}
