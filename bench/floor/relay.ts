/**
 * The smallest correct Bun TCP relay, the `bun-floor` contestant of bench/run.sh (TCP rr and
 * pingpong): what Bun itself costs per connection and per round trip, to tell our overhead from
 * the runtime's. It keeps what any TCP proxy must
 * (bytes sent before the upstream is connected are delivered, a FIN goes on as a write-shutdown
 * and both sides close once both directions ended) and nothing else: no write queue (so no
 * backpressure: fine for 64-byte echoes only), no timers, no logs, no counters.
 *   bun bench/floor/relay.ts LISTEN_PORT TARGET_PORT     (both on 127.0.0.1)
 */
type Side = { peer: Bun.Socket<Side> | null; early: Uint8Array[] | null; eof: boolean };

const [port, target] = [Number(process.argv[2]), Number(process.argv[3])];

function finish(from: Bun.Socket<Side>): void {
  from.data.eof = true;
  const peer = from.data.peer;
  if (peer === null) return;
  if (peer.data.eof) {
    peer.close();
    from.close();
  } else peer.shutdown();
}

Bun.listen<Side>({
  hostname: "127.0.0.1",
  port,
  allowHalfOpen: true,
  data: { peer: null, early: null, eof: false },
  socket: {
    open(client) {
      client.data = { peer: null, early: [], eof: false };
      Bun.connect<Side>({
        hostname: "127.0.0.1",
        port: target,
        allowHalfOpen: true,
        data: { peer: client, early: null, eof: false },
        socket: {
          open(up) {
            client.data.peer = up;
            for (const chunk of client.data.early!) up.write(chunk);
            client.data.early = null;
            if (client.data.eof) up.shutdown();
          },
          data: (up, chunk) => void up.data.peer!.write(chunk),
          end: finish,
          close: (up) => up.data.peer!.close(),
        },
      }).catch(() => client.close());
    },
    data(client, chunk) {
      if (client.data.peer) client.data.peer.write(chunk);
      else client.data.early!.push(chunk);
    },
    end: finish,
    close: (client) => client.data.peer?.close(),
  },
});
process.on("SIGTERM", () => process.exit(0));
