/**
 * Reverse `tcp` end to end, through a real proxy process (sources, a compiled binary with
 * SIDECAR_PROXY_BIN, or Deno with SIDECAR_PROXY_RUNTIME=deno): bulk integrity, half-close both
 * ways, backpressure under a slow reader, refused workloads and resets.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { RawClient, echoServer, patternChunk, sha256, streamServer, waitUntil } from "./helpers/net.ts";
import { type RunningProxy, killAll, startProxy, startWithClosedWorkload } from "./helpers/proxy.ts";
import { runProxyOnce } from "./helpers/proc.ts";
import { connectionsOf, metricsOf } from "./helpers/hardening.ts";
import { readFileSync } from "node:fs";

const MiB = 1024 * 1024;

afterAll(killAll);

function reverseTcp(workloadPort: number, extra: string[] = []): Promise<RunningProxy> {
  return startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(workloadPort), ...extra]);
}

/** A workload that reads until the client's FIN, then answers with the sha256 of what it got and FINs. */
function replyAfterFinServer() {
  const server = Bun.listen<{ hash: ReturnType<typeof sha256>; bytes: number }>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = { hash: sha256(), bytes: 0 };
      },
      data(s, c) {
        s.data.hash.update(c);
        s.data.bytes += c.byteLength;
      },
      end(s) {
        s.write(`${s.data.bytes} ${s.data.hash.hex()}\n`);
        s.shutdown();
      },
    },
  });
  return { port: server.port, stop: () => server.stop(true) };
}

describe("reverse tcp", () => {
  test("100 MiB each way arrives intact (sha256) through the relay", async () => {
    const echo = echoServer();
    const proxy = await reverseTcp(echo.port);
    const client = await RawClient.connect(proxy.ports.reverse!);
    client.keepChunks = false;
    const got = sha256();
    client.onChunk = (c) => got.update(c);
    const sent = sha256();
    const total = 100 * MiB;
    const chunk = 256 * 1024;
    for (let off = 0, seed = 1; off < total; off += chunk, seed++) {
      const data = patternChunk(seed, chunk);
      sent.update(data);
      await client.write(data);
    }
    client.halfClose();
    await client.waitFor(() => client.gotFin, 60_000, "echo FIN");
    expect(client.receivedBytes).toBe(total);
    expect(got.hex()).toBe(sent.hex());
    const line = await proxy.waitForLog((l) => l.msg === "connection", 10_000, "connection log line");
    expect(line.bytesUp).toBe(total);
    expect(line.bytesDown).toBe(total);
    expect(line.termination).toBe("client-fin");
    expect(line.listener).toBe("reverse");
    expect(line.protocol).toBe("tcp");
    client.close();
    await proxy.stop();
    echo.stop();
  }, 120_000);

  test("client half-closes after its request and still receives the whole reply", async () => {
    const server = replyAfterFinServer();
    const proxy = await reverseTcp(server.port);
    const client = await RawClient.connect(proxy.ports.reverse!);
    const body = patternChunk(42, 3 * MiB + 17);
    const expected = sha256();
    expected.update(body);
    await client.write(body);
    client.halfClose();
    await client.waitFor(() => client.gotFin, 20_000, "reply and FIN");
    expect(client.text()).toBe(`${body.byteLength} ${expected.hex()}\n`);
    client.close();
    await proxy.stop();
    server.stop();
  });

  test("server half-closes first and still receives the rest of the client's data", async () => {
    const stream = streamServer(2 * MiB);
    const proxy = await reverseTcp(stream.port);
    const client = await RawClient.connect(proxy.ports.reverse!);
    client.keepChunks = false;
    await client.waitFor(() => client.gotFin, 20_000, "server FIN");
    expect(client.receivedBytes).toBe(2 * MiB);
    // The server's side is closed for writing; ours is still open: keep sending.
    const sent = sha256();
    for (let i = 0; i < 40; i++) {
      const data = patternChunk(100 + i, 64 * 1024);
      sent.update(data);
      await client.write(data);
    }
    client.halfClose();
    await waitUntil(() => stream.result.receivedBytes === 40 * 64 * 1024, 20_000, "server to receive everything");
    expect(stream.result.receivedHash).toBe(sent.hex());
    const line = await proxy.waitForLog((l) => l.msg === "connection", 10_000, "connection log line");
    expect(line.termination).toBe("server-fin");
    await proxy.stop();
    stream.stop();
  });

  test("a slow reader: 256 MiB streamed, memory stays bounded, every byte arrives", async () => {
    const total = 256 * MiB;
    const stream = streamServer(total, 256 * 1024);
    const proxy = await reverseTcp(stream.port);
    const baselineKiB = proxy.rssKiB();
    const client = await RawClient.connect(proxy.ports.reverse!);
    client.keepChunks = false;
    const got = sha256();
    let maxRssKiB = 0;
    let sinceSample = 0;
    client.onChunk = (c) => {
      got.update(c);
      sinceSample += c.byteLength;
      if (sinceSample >= 8 * MiB) {
        // Stop reading for a moment: the kernel buffers fill and the proxy must stop the upstream.
        sinceSample = 0;
        client.pause();
        maxRssKiB = Math.max(maxRssKiB, proxy.rssKiB());
        setTimeout(() => client.resume(), 20);
      }
    };
    await client.waitFor(() => client.gotFin, 90_000, "all 256 MiB");
    expect(client.receivedBytes).toBe(total);
    expect(got.hex()).toBe(stream.result.sentHash);
    // Without backpressure the proxy would hold most of the 256 MiB; with it, a few MiB over baseline.
    expect(maxRssKiB).toBeGreaterThan(0);
    expect(maxRssKiB - baselineKiB).toBeLessThan(64 * 1024);
    client.close();
    await proxy.stop();
    stream.stop();
  }, 120_000);

  test("a workload that never reads: the proxy holds at most --max-buffered-bytes plus one read, then stops reading the client", async () => {
    // The upstream socket is paused at accept: nothing leaves the kernel's queues toward it.
    const mute = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: (s) => void s.pause(), data() {} } });
    const limit = 64 * 1024;
    const proxy = await reverseTcp(mute.port, ["--max-buffered-bytes", "64KiB"]);
    const client = await RawClient.connect(proxy.ports.reverse!);
    client.keepChunks = false;
    // What the proxy holds: what it read from the client (bytesUp) less what the kernel holds
    // between it and the workload (Send-Q of the proxy's socket, Recv-Q of the workload's:
    // /proc/net/tcp tx_queue and rx_queue, hex).
    const port = (hexAddress: string) => parseInt(hexAddress.split(":")[1]!, 16);
    const heldByProxy = async (): Promise<{ bytesUp: number; held: number }> => {
      const [tunnel] = (await connectionsOf(proxy)).active;
      const rows = readFileSync("/proc/net/tcp", "latin1").split("\n").slice(1).map((l) => l.trim().split(/\s+/));
      let inKernel = 0;
      for (const r of rows) {
        if (r.length < 5) continue;
        const [tx, rx] = r[4]!.split(":").map((h) => parseInt(h, 16)) as [number, number];
        if (port(r[2]!) === mute.port) inKernel += tx; // the proxy's socket: its peer is the workload
        if (port(r[1]!) === mute.port) inKernel += rx; // the workload's accepted socket
      }
      return { bytesUp: tunnel!.bytesUp, held: tunnel!.bytesUp - inKernel };
    };
    // Write until a write stays unfinished for half a second while the proxy holds its limit
    // (a stall while it holds less is the machine pausing, not the proxy stopping: keep waiting).
    // Bounded: 2000 writes, 20 s. A proxy that never stops reading takes all 128 MiB.
    const chunk = new Uint8Array(64 * 1024);
    let sent = 0;
    const deadlineMs = Date.now() + 20_000;
    writing: for (let i = 0; i < 2000 && Date.now() < deadlineMs; i++) {
      const write = client.write(chunk).then(() => true);
      while (!(await Promise.race([write, Bun.sleep(500).then(() => false)]))) {
        if ((await heldByProxy()).held >= limit || Date.now() >= deadlineMs) break writing;
      }
      sent += chunk.byteLength;
    }
    const { bytesUp, held } = await heldByProxy();
    expect(sent).toBeGreaterThan(bytesUp); // the client was stopped: bytes wait in its own queues
    expect(held).toBeGreaterThanOrEqual(limit);
    expect(held).toBeLessThanOrEqual(limit + 512 * 1024); // Bun reads at most 512 KiB at once
    client.close();
    await proxy.stop();
    mute.stop(true);
  }, 60_000);

  test("--in-bind 127.0.0.1,:: on one port: both serve under Bun; under Deno, whose :: is dual-stack, start-up fails saying so (it was a bare EADDRINUSE on a port only the proxy held)", async () => {
    const echo = echoServer();
    const args = ["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port), "--in-bind", "127.0.0.1,::", "--no-admin", "--proxy-in-port", "0"];
    if (process.env.SIDECAR_PROXY_RUNTIME === "deno") {
      const r = await runProxyOnce([...args, "--log-format", "json"]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toContain("under Deno, :: is bound dual-stack");
    } else {
      const proxy = await startProxy(args);
      for (const host of ["127.0.0.1", "::1"]) {
        const client = await RawClient.connect(proxy.ports.reverse!, host);
        await client.write(`via ${host}`);
        await client.waitFor(() => client.receivedBytes >= `via ${host}`.length || client.closed, 10_000, `the echo via ${host}`);
        expect(client.text()).toBe(`via ${host}`);
        client.close();
      }
      await proxy.stop();
    }
    echo.stop();
  });

  test("an IPv6 workload (::1): relayed, and named [::1]:port alike in the listening and connection lines", async () => {
    const echo = echoServer("::1");
    const proxy = await startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "::1", "--proxy-port", String(echo.port)]);
    const client = await RawClient.connect(proxy.ports.reverse!);
    await client.write("over v6");
    await client.waitFor(() => client.receivedBytes >= 7 || client.closed, 10_000, "the echo");
    expect(client.text()).toBe("over v6");
    client.halfClose();
    const line = await proxy.waitForLog((l) => l.msg === "connection", 10_000, "connection log line");
    const listening = proxy.logs.filter((l) => l.msg === "listening" && l.listener === "reverse");
    expect(listening.length).toBeGreaterThan(0);
    for (const l of listening) expect(l.workload).toBe(`[::1]:${echo.port}`);
    expect(line.target).toBe(`[::1]:${echo.port}`);
    await proxy.stop();
    echo.stop();
  });

  test("a refused workload closes the client promptly and logs why", async () => {
    const proxy = await startWithClosedWorkload((port) => reverseTcp(port));
    const client = await RawClient.connect(proxy.ports.reverse!);
    await client.write("hello");
    await client.waitFor(() => client.closed || client.gotFin, 10_000, "client to be closed");
    expect(client.receivedBytes).toBe(0);
    const line = await proxy.waitForLog((l) => l.msg === "connection", 10_000, "connection log line");
    expect(line.termination).toBe("connect-refused");
    expect(line.error).toBe("connectRefused");
    expect(String(line.target)).toContain("127.0.0.1:");
    await proxy.stop();
  });

  test("clients that connect and reset at once are no internal error (Bun has no peer address for them) and do not hold up the next client (Deno waited 100 ms after each), with or without --allow-clients", async () => {
    const echo = echoServer();
    for (const extra of [[], ["--allow-clients", "127.0.0.0/8"]]) {
      const proxy = await reverseTcp(echo.port, extra);
      for (let i = 0; i < 300; i++) (await RawClient.connect(proxy.ports.reverse!)).reset();
      const ok = await RawClient.connect(proxy.ports.reverse!);
      await ok.write("still serving");
      await ok.waitFor(() => ok.receivedBytes === "still serving".length, 10_000, "echo");
      expect((await metricsOf(proxy)).value("sidecar_internal_errors_total"), extra.join(" ")).toBe(0);
      expect(proxy.logs.filter((l) => l.msg === "internal error")).toEqual([]);
      await proxy.stop();
    }
    echo.stop();
  });

  test("a client reset mid-stream closes the upstream; a server reset closes the client", async () => {
    const echo = echoServer();
    const proxy = await reverseTcp(echo.port);
    const a = await RawClient.connect(proxy.ports.reverse!);
    await a.write("ping");
    await a.waitFor(() => a.receivedBytes === 4, 10_000, "echo");
    expect(echo.open).toBe(1);
    a.reset();
    await waitUntil(() => echo.open === 0, 10_000, "upstream socket to close");
    const line = await proxy.waitForLog((l) => l.msg === "connection", 10_000, "log line");
    expect(["client-reset", "client-close"]).toContain(String(line.termination));

    // A workload that resets every connection once it has read something.
    const resetter = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(s) {
          s.terminate();
        },
      },
    });
    const proxy2 = await reverseTcp(resetter.port);
    const b = await RawClient.connect(proxy2.ports.reverse!);
    await b.write("boom");
    await b.waitFor(() => b.closed || b.gotFin, 10_000, "client to be closed after the server reset");
    const line2 = await proxy2.waitForLog((l) => l.msg === "connection", 10_000, "log line");
    expect(["server-reset", "server-close"]).toContain(String(line2.termination));
    await proxy.stop();
    await proxy2.stop();
    resetter.stop(true);
    echo.stop();
  });

  test("a tunnel's tail waits for a reader that pauses past --response-timeout (only an answer's close has that limit)", async () => {
    // Both FINs seen, 16 MB still on their way to a client that reads nothing for a while (most
    // of it queued in the proxy: --max-buffered-bytes 64MiB): the tunnel's own limits (1 h)
    // apply, not the flush limit of HTTP answers (here 300 ms).
    const TOTAL = 16 * MiB;
    const server = (await import("node:net")).createServer({ allowHalfOpen: true }, (s) => {
      s.on("data", () => {});
      s.on("error", () => {});
      s.end(Buffer.alloc(TOTAL, 0x61));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const port = (server.address() as { port: number }).port;
    const p = await startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(port), "--response-timeout", "300ms", "--max-buffered-bytes", "64MiB"]);
    const client = await RawClient.connect(p.ports.reverse!);
    client.keepChunks = false;
    try {
      client.pause();
      await client.write("hello");
      client.halfClose();
      // Several times the flush limit with nothing read (a cut would come as a reset here).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      client.resume();
      await client.waitFor(() => client.closed, 20_000, "the whole stream and the close");
      expect(client.receivedBytes).toBe(TOTAL);
      expect(client.closeError).toBeUndefined();
    } finally {
      client.close();
      server.close();
    }
  }, 40_000);
});
