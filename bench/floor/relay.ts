/**
 * The smallest correct Bun TCP relay, the `bun-floor` contestant of bench/run.sh (TCP rr and
 * pingpong): what Bun itself costs per connection and per round trip, to tell our overhead from
 * the runtime's. It keeps what any TCP proxy must
 * (bytes sent before the upstream is connected are delivered, a FIN goes on as a write-shutdown
 * and both sides close once both directions ended) and nothing else: no write queue (so no
 * backpressure: fine for 64-byte echoes only), no timers, no logs, no counters.
 *   bun bench/floor/relay.ts LISTEN_PORT TARGET_PORT     (both on 127.0.0.1)
 *   bun bench/floor/relay.ts LISTEN_PORT connect         (the same behind an HTTP CONNECT)
 * With `connect` it is the floor of an HTTP CONNECT proxy (HTTP CONNECT rr and pingpong): it
 * reads the head up to its blank line, dials the `CONNECT host:port` authority (an IP literal,
 * brackets removed), answers 200 once connected and relays from there. No checks beyond that:
 * any other head, or one over 8 KiB, is closed.
 *   bun bench/floor/relay.ts LISTEN_PORT TARGET_PORT queued
 * With `queued` (TCP bulk) it adds the one thing bulk needs and 64-byte echoes do not: what the
 * kernel does not take is queued, the other side paused until `drain` empties the queue, and a
 * FIN or close waits for it. Kept apart from the plain path so that path stays as it was (a
 * `drain` handler alone costs a setsockopt per FIN: see lib/runtime/bun.ts).
 */
type Side = { peer: Bun.Socket<Side> | null; early: Uint8Array[] | null; eof: boolean; head: Uint8Array | null };
/** `queued` mode: `queue` holds what this socket's kernel buffer did not take. */
type QSide = { peer: Bun.Socket<QSide> | null; early: Uint8Array[] | null; eof: boolean; queue: Uint8Array[] | null };

const port = Number(process.argv[2]);
const connectMode = process.argv[3] === "connect";
const target = connectMode ? 0 : Number(process.argv[3]);
const queuedMode = process.argv[4] === "queued";
const ESTABLISHED = new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n");
const CONNECT = "CONNECT ";
const MAX_HEAD = 8192;
const latin1 = new TextDecoder("latin1");

function finish(from: Bun.Socket<Side>): void {
  from.data.eof = true;
  const peer = from.data.peer;
  if (peer === null) return;
  if (peer.data.eof) {
    peer.close();
    from.close();
  } else peer.shutdown();
}

/** Dials host:port for `client`; `reply` is written to the client once connected. */
function dial(client: Bun.Socket<Side>, host: string, toPort: number, reply: Uint8Array | null): void {
  Bun.connect<Side>({
    hostname: host,
    port: toPort,
    allowHalfOpen: true,
    data: { peer: client, early: null, eof: false, head: null },
    socket: {
      open(up) {
        client.data.peer = up;
        if (reply) client.write(reply);
        for (const chunk of client.data.early!) up.write(chunk);
        client.data.early = null;
        if (client.data.eof) up.shutdown();
      },
      data: (up, chunk) => void up.data.peer!.write(chunk),
      end: finish,
      close: (up) => up.data.peer!.close(),
    },
  }).catch(() => client.close());
}

/** CONNECT mode: collects the head; once complete, dials its authority. */
function headBytes(client: Bun.Socket<Side>, chunk: Uint8Array): void {
  const prev = client.data.head!;
  const buf = prev.byteLength === 0 ? chunk : Buffer.concat([prev, chunk]);
  const text = latin1.decode(buf);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) {
    if (buf.byteLength > MAX_HEAD) client.close();
    else client.data.head = buf;
    return;
  }
  client.data.head = null;
  const targetEnd = text.indexOf(" ", CONNECT.length);
  const colon = text.lastIndexOf(":", targetEnd);
  if (!text.startsWith(CONNECT) || targetEnd < 0 || colon < CONNECT.length) return void client.close();
  const host = text.slice(CONNECT.length, colon).replace(/^\[(.*)\]$/, "$1");
  const rest = buf.subarray(end + 4);
  if (rest.byteLength > 0) client.data.early!.push(rest);
  dial(client, host, Number(text.slice(colon + 1, targetEnd)), ESTABLISHED);
}

// --- queued mode (bulk) ---

/** Writes `chunk` to `to`; what the kernel does not take is queued and `from` paused. */
function send(to: Bun.Socket<QSide>, from: Bun.Socket<QSide>, chunk: Uint8Array): void {
  if (to.data.queue !== null) return void to.data.queue.push(chunk);
  const n = to.write(chunk);
  if (n === chunk.byteLength) return;
  to.data.queue = [chunk.subarray(Math.max(n, 0))];
  from.pause();
}

function flush(to: Bun.Socket<QSide>): void {
  const queue = to.data.queue;
  if (queue === null) return;
  while (queue.length > 0) {
    const head = queue[0]!;
    const n = to.write(head);
    if (n < head.byteLength) {
      if (n > 0) queue[0] = head.subarray(n);
      return;
    }
    queue.shift();
  }
  to.data.queue = null;
  const from = to.data.peer;
  if (from === null) return;
  from.resume();
  if (from.data.eof) passFin(from);
}

/** `from` has ended: its peer's write side follows once its queue is empty; both close when both ended. */
function passFin(from: Bun.Socket<QSide>): void {
  const to = from.data.peer;
  if (to === null || to.data.queue !== null) return;
  if (to.data.eof && from.data.queue === null) {
    to.close();
    from.close();
  } else to.shutdown();
}

function queuedEnd(from: Bun.Socket<QSide>): void {
  from.data.eof = true;
  passFin(from);
}

const QUEUED_COMMON = {
  data: (s: Bun.Socket<QSide>, chunk: Uint8Array) => {
    if (s.data.peer) send(s.data.peer, s, chunk);
    else s.data.early!.push(chunk);
  },
  drain: flush,
  end: queuedEnd,
  close: (s: Bun.Socket<QSide>) => s.data.peer?.close(),
};

function listenQueued(): void {
  Bun.listen<QSide>({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    data: { peer: null, early: null, eof: false, queue: null },
    socket: {
      ...QUEUED_COMMON,
      open(client) {
        client.data = { peer: null, early: [], eof: false, queue: null };
        Bun.connect<QSide>({
          hostname: "127.0.0.1",
          port: target,
          allowHalfOpen: true,
          data: { peer: client, early: null, eof: false, queue: null },
          socket: {
            ...QUEUED_COMMON,
            open(up) {
              client.data.peer = up;
              for (const chunk of client.data.early!) send(up, client, chunk);
              client.data.early = null;
              if (client.data.eof) passFin(client);
            },
          },
        }).catch(() => client.close());
      },
    },
  });
}

if (queuedMode) listenQueued();
else Bun.listen<Side>({
  hostname: "127.0.0.1",
  port,
  allowHalfOpen: true,
  data: { peer: null, early: null, eof: false, head: null },
  socket: {
    open(client) {
      client.data = { peer: null, early: [], eof: false, head: connectMode ? new Uint8Array(0) : null };
      if (!connectMode) dial(client, "127.0.0.1", target, null);
    },
    data(client, chunk) {
      if (client.data.head !== null) headBytes(client, chunk);
      else if (client.data.peer) client.data.peer.write(chunk);
      else client.data.early!.push(chunk);
    },
    end: finish,
    close: (client) => client.data.peer?.close(),
  },
});
process.on("SIGTERM", () => process.exit(0));
