/**
 * Deno adapter for the runtime ports (lib/runtime/types.ts), on `Deno.listen` / `Deno.connect`;
 * the Conn itself is in deno-conn.ts. Loaded only under Deno, by lib/runtime/select.ts.
 *
 * Facts this file relies on (Deno 2.9.6 on Linux, measured):
 * - `Deno.listen` has no IPV6_V6ONLY option (nor does `node:net`'s `ipv6Only` under Deno): a
 *   `::` socket is dual-stack when net.ipv6.bindv6only=0 (the Linux default), so binding
 *   `0.0.0.0` and `::` on one port fails with AddrInUse whichever comes second. See `listen`.
 * - A listener closed while an `accept()` is pending keeps its port until that accept has
 *   rejected, so a port can be re-bound at once only if no accept was started yet.
 * - `Deno.connect` takes an AbortSignal, which is how an attempt past its deadline is dropped.
 * - `node:dns` `lookup` works under Deno and reads /etc/hosts (`Deno.resolveDns` does not).
 * - /proc/self/limits needs `--allow-all` (plain `--allow-read` is refused with NotCapable).
 */
import { isIP } from "../address.ts";
import { ProxyError, errnoOf, lookupFailure } from "../errors.ts";
import { reportFault } from "../fault.ts";
import { LOG_QUEUE_MAX_BYTES } from "../limits.ts";
import { readFdLimit } from "./fd-limit.ts";
import { PendingConnect } from "./pending-connect.ts";
import { settledWithin } from "./settled.ts";
import { DenoConn, type DenoNetAddr, type DenoTcpConn } from "./deno-conn.ts";
import type { Conn, ConnectOptions, ListenOptions, Listener, Runtime } from "./types.ts";

interface DenoTcpListener {
  readonly addr: DenoNetAddr;
  accept(): Promise<DenoTcpConn>;
  close(): void;
}

/** The part of the `Deno` namespace this adapter uses (tsc runs without Deno's types). */
interface DenoNamespace {
  readonly stdout: { write(data: Uint8Array): Promise<number> };
  listen(options: { hostname: string; port: number; transport: "tcp" }): DenoTcpListener;
  connect(options: { hostname: string; port: number; transport: "tcp"; signal: AbortSignal }): Promise<DenoTcpConn>;
}

const deno = (globalThis as unknown as { Deno: DenoNamespace }).Deno;

/** After a failed accept (EMFILE and the like) wait this long before the next one, not a spin. */
const ACCEPT_RETRY_MS = 100;
/**
 * Accept failures that are one client's, not the listener's: a client that reset before its
 * accept (Deno reports NotConnected for it), and the pending network errors Linux hands over
 * from accept(2) for the new socket, which its man page says to treat like EAGAIN. The next
 * client is accepted at once; waiting ACCEPT_RETRY_MS for each let ten resets a second stall
 * the listener (an audit: 50 resets held /healthz for 5 s, past the kubelet's 1 s probe timeout).
 */
const CLIENT_GONE_AT_ACCEPT = new Set([
  "ENOTCONN",
  "ECONNABORTED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPROTO",
  "ENOPROTOOPT",
  "EHOSTDOWN",
  "ENONET",
  "EHOSTUNREACH",
  "EOPNOTSUPP",
  "ENETUNREACH",
  "ENETDOWN",
]);

type Family = 4 | 6;
type OnAccept = (conn: Conn) => void;

/**
 * One bound Deno listener and the listeners (`routes`) it serves. A socket on `::` that is
 * dual-stack serves the IPv4 route with the IPv4-mapped peers and the IPv6 route with the
 * others; a peer with no route is closed at once (what an IPv6-only `::` would have refused).
 */
class Socket {
  readonly routes: { [F in Family]?: OnAccept } = {};
  private acceptStarted = false;
  private closed = false;
  /** Settles when the accept loop has ended, i.e. once the port is released. */
  private readonly loopEnded: Promise<void>;

  constructor(
    public raw: DenoTcpListener,
    public onV6Wildcard: boolean,
  ) {
    // Deferred so that listens made in the same tick can still re-bind this port (see listen).
    this.loopEnded = new Promise((resolve) => queueMicrotask(() => void this.acceptLoop().then(resolve)));
  }

  get canRebind(): boolean {
    return !this.acceptStarted;
  }

  /**
   * Resolves once the port is released. `close()` with an `accept()` pending releases the
   * socket only when that accept has rejected, on a later turn of the event loop: until then
   * the kernel still completes handshakes for new clients (they are then reset).
   */
  stop(family: Family): Promise<void> {
    delete this.routes[family];
    if (this.routes[4] || this.routes[6]) return Promise.resolve();
    if (!this.closed) {
      this.closed = true;
      this.raw.close();
    }
    return this.loopEnded;
  }

  private async acceptLoop(): Promise<void> {
    this.acceptStarted = true;
    while (!this.closed) {
      let raw: DenoTcpConn;
      try {
        raw = await this.raw.accept();
      } catch (err) {
        if (this.closed) return;
        if (CLIENT_GONE_AT_ACCEPT.has(errnoOf(err) ?? "")) continue;
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      if (this.closed) {
        raw.close(); // accepted as we stopped: the listener is gone for its owner
        return;
      }
      this.dispatch(raw);
    }
  }

  private dispatch(raw: DenoTcpConn): void {
    const peer = raw.remoteAddr.hostname;
    const mapped = this.onV6Wildcard && peer.startsWith("::ffff:") && peer.includes(".");
    const onAccept = this.onV6Wildcard ? this.routes[mapped ? 4 : 6] : (this.routes[4] ?? this.routes[6]);
    if (!onAccept) {
      try {
        raw.close();
      } catch {
        // already gone
      }
      return;
    }
    const conn = new DenoConn(raw, mapped);
    try {
      onAccept(conn);
    } catch (err) {
      conn.fault(err, "accept"); // the accept loop must go on
    }
  }
}

/** Our own wildcard sockets, by `family/port`: the two halves of one port can share one. */
const wildcards = new Map<string, Socket>();

function familyOf(hostname: string): Family {
  return hostname.includes(":") ? 6 : 4;
}

function isWildcard(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::";
}

function isAddrInUse(err: unknown): boolean {
  return errnoOf(err) === "EADDRINUSE";
}

/**
 * Binds `hostname:port`. The app binds each `--in-bind` address on its own (Bun binds `::` as
 * IPv6-only), so for the default `0.0.0.0,::` a second wildcard on the same port that collides
 * with our own first one shares it instead:
 * - `::` after `0.0.0.0`: the IPv4 socket (not accepting yet) is closed and one dual-stack `::`
 *   socket is bound that serves both listeners;
 * - `0.0.0.0` after `::`: the dual-stack `::` socket takes the IPv4 listener too.
 * Where `::` is IPv6-only already (bindv6only=1) the second bind succeeds and nothing is shared.
 */
function listen(options: ListenOptions): Listener {
  const { hostname, onAccept } = options;
  const family = familyOf(hostname);
  let socket: Socket;
  try {
    socket = new Socket(deno.listen({ hostname, port: options.port, transport: "tcp" }), hostname === "::");
  } catch (err) {
    const shared = isWildcard(hostname) && isAddrInUse(err) ? shareWildcard(hostname, options.port) : undefined;
    if (!shared) throw isAddrInUse(err) ? (dualStackClash(hostname, options.port) ?? err) : err;
    socket = shared;
  }
  socket.routes[family] = onAccept;
  const port = socket.raw.addr.port;
  if (isWildcard(hostname)) wildcards.set(`${family}/${port}`, socket);
  if (family === 4) ipv4Ports.set(port, (ipv4Ports.get(port) ?? 0) + 1);
  let stopped = false;
  return {
    hostname,
    port,
    // Returns a promise (assignable to the port's `stop(): void`) that settles once the port
    // no longer accepts connections; see Socket.stop.
    stop: (): Promise<void> => {
      if (stopped) return Promise.resolve();
      stopped = true;
      wildcards.delete(`${family}/${port}`);
      if (family === 4) ipv4Ports.set(port, ipv4Ports.get(port)! - 1);
      return socket.stop(family);
    },
  };
}

/** Our own IPv4 listeners by port (how many), to explain a clash with a dual-stack `::`. */
const ipv4Ports = new Map<number, number>();

/**
 * A bind that failed because Deno's `::` is dual-stack (it cannot make an IPv6-only socket, so
 * `::` takes every IPv4 address of its port) and one of our own IPv4 listeners holds the port:
 * an error that says so (Bun binds these side by side), or null for another owner.
 */
function dualStackClash(hostname: string, port: number): Error | null {
  const v6WildcardOurs = wildcards.get(`6/${port}`)?.onV6Wildcard === true;
  const clash = hostname === "::" ? (ipv4Ports.get(port) ?? 0) > 0 : familyOf(hostname) === 4 && v6WildcardOurs;
  if (!clash) return null;
  return new Error(
    `under Deno, :: is bound dual-stack (Deno has no IPv6-only sockets) and takes every IPv4 address of port ${port}, so it cannot share the port with a specific IPv4 address; bind 0.0.0.0 and :: (they share one socket), an IPv6 address other than ::, or run the compiled binary (Bun)`,
  );
}

/** The other wildcard of `port` is ours: serve both from one dual-stack socket, or undefined. */
function shareWildcard(hostname: string, port: number): Socket | undefined {
  if (hostname === "0.0.0.0") {
    const v6 = wildcards.get(`6/${port}`);
    return v6 && !v6.routes[4] ? v6 : undefined;
  }
  const v4 = wildcards.get(`4/${port}`);
  if (!v4 || v4.onV6Wildcard || !v4.canRebind) return undefined;
  v4.raw.close();
  try {
    v4.raw = deno.listen({ hostname: "::", port, transport: "tcp" });
  } catch (err) {
    v4.raw = deno.listen({ hostname: "0.0.0.0", port, transport: "tcp" });
    throw err;
  }
  v4.onV6Wildcard = true;
  return v4;
}

function connect(options: ConnectOptions, done: (result: Conn | ProxyError) => void): void {
  const abort = new AbortController();
  const pending = PendingConnect.start(options, done, () => abort.abort());
  if (!pending) return;
  deno.connect({ hostname: options.hostname, port: options.port, transport: "tcp", signal: abort.signal }).then(
    (raw) => {
      const conn = new DenoConn(raw);
      try {
        pending.opened(conn);
      } catch (err) {
        conn.fault(err, "connect");
      }
    },
    (err: unknown) => {
      try {
        pending.failed(err);
      } catch (fault) {
        reportFault(fault, "connect");
      }
    },
  );
}

/** `node:dns` lookup (getaddrinfo: /etc/hosts, then DNS), IPv6 and IPv4, duplicates removed. */
async function resolve(hostname: string): Promise<string[]> {
  if (isIP(hostname)) return [hostname];
  try {
    // Imported here, not at the top: the compiled Bun binary bundles this file, and a bundle
    // loads every node: module it names at start-up, whichever runtime runs it.
    const { lookup } = await import("node:dns/promises");
    const results = await lookup(hostname, { all: true });
    const addresses = [...new Set(results.map((r) => r.address))];
    if (addresses.length > 0) return addresses;
  } catch (err) {
    throw lookupFailure(hostname, err);
  }
  throw lookupFailure(hostname);
}

/**
 * Log lines through `Deno.stdout.write` with a queue of our own: Deno's process.stdout writes
 * synchronously, so a log reader that stops reading would stop the whole proxy. One writer
 * drains the queue (the write may take part of a chunk); a write error (EPIPE: the reader is
 * gone) stops logging, never the process.
 */
const stdoutQueue: Uint8Array[] = [];
let stdoutQueuedBytes = 0;
let stdoutWriting: Promise<void> | null = null;
let stdoutBroken = false;
const stdoutEncoder = new TextEncoder();

async function drainStdout(): Promise<void> {
  try {
    for (let chunk = stdoutQueue[0]; chunk; chunk = stdoutQueue[0]) {
      let offset = 0;
      while (offset < chunk.length) offset += await deno.stdout.write(chunk.subarray(offset));
      stdoutQueue.shift();
      stdoutQueuedBytes -= chunk.length;
    }
  } catch {
    stdoutBroken = true;
    stdoutQueue.length = 0;
    stdoutQueuedBytes = 0;
  } finally {
    stdoutWriting = null;
  }
}

function writeStdout(line: string): boolean {
  if (stdoutBroken || stdoutQueuedBytes > LOG_QUEUE_MAX_BYTES) return false;
  const bytes = stdoutEncoder.encode(line);
  stdoutQueue.push(bytes);
  stdoutQueuedBytes += bytes.length;
  stdoutWriting ??= drainStdout();
  return true;
}

async function flushStdout(timeoutMs: number): Promise<void> {
  if (stdoutWriting) await settledWithin(stdoutWriting, timeoutMs);
}

export const denoRuntime: Runtime = { name: "deno", listen, connect, resolve, fdLimit: readFdLimit, writeStdout, flushStdout };
