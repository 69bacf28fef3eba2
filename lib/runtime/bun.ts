/**
 * Bun adapter for the runtime ports (lib/runtime/types.ts), on `Bun.listen` / `Bun.connect`;
 * its Conn (BunConn) and the shared socket handlers are bun-conn.ts.
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
 *   closes at once only after the peer's FIN, and otherwise lingers (Lingering, bun-conn.ts).
 * - The `open` handler runs before the `Bun.connect` promise resolves, and `data` can follow
 *   before the caller installs its events: those are held and replayed by `setEvents`.
 * - With a `drain` handler, the writable event that follows each FIN Bun reads costs a
 *   `setsockopt(TCP_CORK)` and a call into JS (strace). Connected sockets therefore start
 *   without one and get it, by `socket.reload` (per socket for `Bun.connect`), on their first
 *   partial write. Accepted sockets share the listener's handlers, which have it.
 */
import { ProxyError, lookupFailure } from "../errors.ts";
import { reportFault } from "../fault.ts";
import { flushStdout, writeStdout } from "./bun-stdout.ts";
import { readFdLimit } from "./fd-limit.ts";
import { PendingConnect } from "./pending-connect.ts";
import type { Conn, ConnectOptions, ListenOptions, Listener, Runtime } from "./types.ts";
import { type BunSocket, BunConn, COMMON_HANDLERS, attach } from "./bun-conn.ts";

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
