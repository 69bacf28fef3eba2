/**
 * Fault tests (issue #5 item 5), loopback only, every loop bounded, each test stops by itself:
 * slowloris on HTTP headers and on the SOCKS handshake, 1000 idle tunnels reaped with fds and
 * memory back near baseline, an upstream that resets mid-response, an upstream that accepts and
 * never answers / never completes the connect (504 / 0x06), a client flood above the connection
 * cap, and a run under `ulimit -n 256` where accept does not spin and service resumes.
 *
 * Deadlines are configured short (300 ms) and the tests wait for their observable effect (a
 * close, a log line, a metric) with generous bounds; nothing asserts that something was fast.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LOG_QUEUE_MAX_BYTES } from "../lib/limits.ts";
import { RawClient, type TestServer, echoServer } from "./helpers/net.ts";
import { type Origin, httpOrigin, parseResponses, stalledPort } from "./helpers/origins.ts";
import { cleanEnv, proxyCommand } from "./helpers/proc.ts";
import { type LogLine, type RunningProxy, killAll, startProxy } from "./helpers/proxy.ts";
import {
  NetClient,
  SOCKS5_HEAD_BYTES,
  adminGet,
  metricsOf,
  procCpuSeconds,
  procFdCount,
  procFdLimit,
  procRssKiB,
  socks5Connect,
  socks5Rep,
  startProxyWrapped,
  until,
  untilMetric,
} from "./helpers/hardening.ts";

const T = 30_000;
const HELLO = "hello from origin";
const MiB = 1024;

let echo: TestServer;
let origin: Origin;
const servers: Array<{ stop(): void }> = [];

beforeAll(() => {
  echo = echoServer();
  origin = httpOrigin();
});

afterAll(() => {
  killAll();
  for (const s of [echo, origin, ...servers]) s?.stop();
});

const reverseTcp = (extra: string[] = []) =>
  startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port), ...extra]);
const forwardSocks = (extra: string[] = []) => startProxy(["--proxy-type", "forward", "--proxy-protocol", "socks", ...extra]);
const forwardHttp = (extra: string[] = []) => startProxy(["--proxy-type", "forward", "--proxy-protocol", "http", ...extra]);

/**
 * A stalled port on `dead` (a full accept queue: connects hang) and an echo server on the same
 * port of the other loopback address. Another port is tried if that one is taken there. With
 * `live` false the echo server is closed again at once: nothing listens there (a refusal).
 */
async function stalledBeside(dead: "127.0.0.1" | "::1", live = true): Promise<{ stalled: { port: number; stop(): void }; live: TestServer }> {
  for (let attempt = 1; ; attempt++) {
    const stalled = await stalledPort(60_000, dead);
    servers.push(stalled);
    try {
      const echo = echoServer(dead === "::1" ? "127.0.0.1" : "::1", stalled.port);
      if (live) servers.push(echo);
      else echo.stop();
      return { stalled, live: echo };
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

function lineFor(p: RunningProxy, c: NetClient, timeoutMs = 10_000): Promise<LogLine> {
  const client = `127.0.0.1:${c.localPort}`;
  return p.waitForLog((l) => l.msg === "connection" && l.client === client, timeoutMs, `connection log line of ${client}`);
}

const get = (url: string) => `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n\r\n`;

/** One GET on a fresh connection; the parsed final responses once the first is complete (or the proxy closed). */
async function fetchVia(port: number, request: string) {
  const c = await NetClient.connect(port);
  await c.write(request);
  const finals = () => parseResponses(Buffer.concat(c.chunks), [], c.ended).responses.filter((r) => r.status >= 200);
  await c.waitFor(() => c.ended || (finals().length > 0 && finals()[0]!.complete), 10_000, "a response");
  return { c, finals: finals() };
}

/**
 * Sends `bytes` one byte every `stepMs` while the proxy keeps the connection open. Returns how
 * many bytes were sent. Bounded by bytes.length (<= 50 here).
 */
async function dribble(c: NetClient, bytes: Uint8Array, stepMs: number, onByte?: (n: number) => void): Promise<number> {
  let sent = 0;
  while (sent < bytes.length && !c.ended) {
    await c.write(bytes.subarray(sent, sent + 1));
    sent++;
    onByte?.(sent);
    await Bun.sleep(stepMs);
  }
  return sent;
}

// ---------------------------------------------------------------------------------------------

describe("slowloris", () => {
  test("HTTP headers one byte every 100 ms: closed by --header-timeout 300ms (408 or a close) while a normal client is served", async () => {
    const p = await forwardHttp(["--header-timeout", "300ms"]);
    const slow = await NetClient.connect(p.ports.forward!);
    // 50 bytes of a request head that never ends: 5 s of dribbling if nobody stops it.
    const head = new TextEncoder().encode(`GET ${origin.url("/hello")} HTTP/1.1\r\nX-Slow: ${"z".repeat(50)}`).subarray(0, 50);
    let normal: Promise<{ finals: Array<{ status: number; body: Buffer }> }> | null = null;
    const sent = await dribble(slow, head, 100, (n) => {
      if (n === 2) normal = fetchVia(p.ports.forward!, get(origin.url("/hello")));
    });
    await slow.waitFor(() => slow.ended, 10_000, "the slow client to be closed");
    // The deadline counts from the first byte and is not pushed back by each new byte: the
    // client was cut long before its 50 bytes (5 s) were out.
    expect(sent).toBeLessThan(head.length);
    const answer = slow.text();
    if (answer.length > 0) expect(answer).toStartWith("HTTP/1.1 408 ");
    const line = await lineFor(p, slow);
    expect(line.termination).toBe("header-timeout");
    expect(normal).not.toBeNull();
    const served = await normal!;
    expect(served.finals[0]?.status).toBe(200);
    expect(served.finals[0]!.body.toString()).toBe(HELLO);
    // And after it, too.
    const after = await fetchVia(p.ports.forward!, get(origin.url("/hello")));
    expect(after.finals[0]?.status).toBe(200);
    after.c.close();
  }, T);

  test("SOCKS5 handshake one byte every 100 ms: closed by --handshake-timeout 300ms while a normal client is served", async () => {
    const p = await forwardSocks(["--handshake-timeout", "300ms"]);
    const slow = await NetClient.connect(p.ports.forward!);
    // RFC 6761 .invalid: should the deadline fail, the request completes and resolves nothing.
    const handshake = socks5Connect("slowloris.invalid", 80);
    let normal: Promise<NetClient> | null = null;
    const sent = await dribble(slow, handshake, 100, (n) => {
      if (n === 2) {
        normal = (async () => {
          const c = await NetClient.connect(p.ports.forward!);
          await c.write(socks5Connect("127.0.0.1", echo.port));
          await c.waitFor(() => c.receivedBytes >= SOCKS5_HEAD_BYTES || c.ended, 10_000, "SOCKS reply");
          await c.roundTrip("served during the slowloris;");
          return c;
        })();
      }
    });
    await slow.waitFor(() => slow.ended, 10_000, "the slow handshake to be closed");
    expect(sent).toBeLessThan(handshake.length);
    // At most the method selection (05 00) came back: no CONNECT reply.
    expect(slow.receivedBytes).toBeLessThanOrEqual(2);
    const line = await lineFor(p, slow);
    expect(line.termination).toBe("handshake-timeout");
    expect(line.error).toBe("handshakeTimeout");
    expect((await metricsOf(p)).value("sidecar_errors_total", { listener: "forward", kind: "handshakeTimeout" })).toBe(1);
    expect(normal).not.toBeNull();
    const ok = await normal!;
    expect(socks5Rep(ok)).toBe(0x00);
    ok.close();
  }, T);
});

// ---------------------------------------------------------------------------------------------

describe("1000 idle tunnels", () => {
  test("are all reaped by the tunnel idle timeout; fds back to baseline, memory near it", async () => {
    const N = 1000;
    // The test process holds 2 fds per tunnel (client + echo server side).
    expect(procFdLimit(process.pid), "the test runner needs a soft fd limit of at least 4096").toBeGreaterThanOrEqual(4096);
    // 4 s: opening 1000 tunnels on loopback takes ~0.1 s here (a few tenths on a loaded CI
    // machine), so all 1000 are open at once with a wide margin before the first is reaped.
    const p = await reverseTcp(["--tunnel-idle-timeout", "4s"]);
    const port = p.ports.reverse!;
    // Warm up (JIT, allocator arenas, timers) so the baseline is the steady state.
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.connect(port);
      await c.write("w");
      await c.waitFor(() => c.receivedBytes >= 1, 10_000, "warm-up echo");
      c.close();
    }
    await untilMetric(p, "sidecar_connections_active", { listener: "reverse" }, (v) => v === 0, 10_000, "warm-up done");
    // The runtime opens short-lived fds of its own (Bun reads /proc/self/statm now and then, seen
    // with strace): the baseline is the least of a few samples, so the peak check below is exact.
    const fdSamples: number[] = [];
    for (let i = 0; i < 5; i++) {
      fdSamples.push(procFdCount(p.pid));
      await Bun.sleep(20);
    }
    const baseFds = Math.min(...fdSamples);
    const baseRssKiB = procRssKiB(p.pid);

    /** Opens N idle tunnels, waits until every one is reaped, checks fds; returns the RSS after. */
    const cycle = async (round: number): Promise<number> => {
      const clients: RawClient[] = [];
      for (let batch = 0; batch < N / 100; batch++) {
        const opened = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(port)));
        await Promise.all(
          opened.map(async (c) => {
            c.keepChunks = false;
            await c.write("i");
            await c.waitFor(() => c.receivedBytes >= 1, 10_000, "first echo");
          }),
        );
        clients.push(...opened);
      }
      const peak = await metricsOf(p);
      expect(peak.value("sidecar_connections_active", { listener: "reverse" })).toBe(N);
      const peakFds = procFdCount(p.pid);
      expect(peakFds).toBeGreaterThanOrEqual(baseFds + 2 * N); // client side + upstream side

      await untilMetric(p, "sidecar_connections_active", { listener: "reverse" }, (v) => v === 0, 20_000, "every tunnel reaped");
      await Promise.all(clients.map((c) => c.waitFor(() => c.closed || c.gotFin, 10_000, "the client side to be closed")));
      for (const c of clients) c.close();
      // The log lines come through a pipe and may trail the metrics endpoint by a moment.
      const reapedLines = () => p.logs.filter((l) => l.msg === "connection" && l.termination === "idle-timeout").length;
      const reaped = await until(reapedLines, (v) => v >= N * round, 10_000, "an idle-timeout log line per tunnel");
      expect(reaped).toBe(N * round);
      await until(() => echo.open, (v) => v === 0, 10_000, "the echo server to see every upstream closed");

      // fds: exactly what it was, give or take a couple (an fd the runtime opens lazily).
      const fds = await until(() => procFdCount(p.pid), (v) => v <= baseFds + 2, 10_000, `fds back to ${baseFds}`);
      expect(Math.abs(fds - baseFds)).toBeLessThanOrEqual(2);
      return procRssKiB(p.pid);
    };
    const rss1 = await cycle(1);
    const rss2 = await cycle(2);
    // Memory is asserted for the Bun runtime (the sources and the compiled binary). Bun measured
    // ~+9 MiB after the first round of 1000 tunnels and ~0 more after the second: a leak of
    // per-tunnel state (sockets, relay, timers, records beyond the 200 recent) grows every round,
    // garbage kept for reuse does not. Under Deno, V8 grows its heap over several rounds before it
    // settles (measured: 53 -> 95 -> 122 -> 135 -> 140 -> 139 MiB over five rounds of 1000), so
    // two rounds cannot tell growth from a leak there: Deno runs check fds and reaping only.
    if (process.env.SIDECAR_PROXY_RUNTIME !== "deno") {
      expect(rss1 - baseRssKiB, `RSS ${baseRssKiB} KiB -> ${rss1} KiB`).toBeLessThan(40 * MiB);
      expect(rss2 - rss1, `RSS ${rss1} KiB -> ${rss2} KiB after a second round`).toBeLessThan(16 * MiB);
    }
    // And the proxy still serves.
    const after = await NetClient.connect(port);
    await after.roundTrip("after the storm;");
    after.close();
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------

describe("misbehaving upstreams", () => {
  /** An origin that sends `response` (head + part of a body) to a request, then waits to be reset. */
  function resettingOrigin(response: string | null) {
    const socks: Array<Bun.Socket<undefined>> = [];
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(s, chunk) {
          if (!Buffer.from(chunk).includes("\r\n\r\n")) return;
          socks.push(s);
          if (response === null) s.terminate(); // reset before any byte of a response
          else s.write(response);
        },
      },
    });
    servers.push({ stop: () => server.stop(true) });
    return { port: server.port, resetAll: () => socks.forEach((s) => s.terminate()) };
  }

  test("an origin that resets mid-body: the client gets the partial body and a close, never a second status line", async () => {
    const partial = "x".repeat(1000);
    const bad = resettingOrigin(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n${partial}`);
    const p = await forwardHttp();
    const c = await NetClient.connect(p.ports.forward!);
    await c.write(get(`http://127.0.0.1:${bad.port}/big`));
    await c.waitFor(() => c.text().endsWith(partial) || c.ended, 10_000, "the head and the partial body");
    bad.resetAll();
    await c.waitFor(() => c.ended, 10_000, "the client to be closed");
    const text = c.text();
    expect(text.match(/HTTP\/1\.[01] \d{3}/g)).toHaveLength(1);
    expect(text).toStartWith("HTTP/1.1 200 ");
    const [r] = parseResponses(Buffer.from(text, "latin1"), [], true).responses;
    expect(r!.complete).toBe(false);
    expect(r!.body.length).toBe(partial.length);
    const line = await lineFor(p, c);
    expect(line.termination).not.toBe("client-fin");
    expect(line.error).toBeDefined();
  }, T);

  test("an origin that resets mid-chunked-body: same, no second status line", async () => {
    const bad = resettingOrigin(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n${"y".repeat(600)}`);
    const p = await forwardHttp();
    const c = await NetClient.connect(p.ports.forward!);
    await c.write(get(`http://127.0.0.1:${bad.port}/chunked`));
    await c.waitFor(() => c.text().endsWith("y".repeat(600)) || c.ended, 10_000, "the head and the partial chunk");
    bad.resetAll();
    await c.waitFor(() => c.ended, 10_000, "the client to be closed");
    expect(c.text().match(/HTTP\/1\.[01] \d{3}/g)).toHaveLength(1);
    expect(c.text()).not.toContain("0\r\n\r\n"); // the body was not "completed" by the proxy
  }, T);

  test("an origin that resets before answering: 502 with Connection: close", async () => {
    const bad = resettingOrigin(null);
    const p = await forwardHttp();
    const { c, finals } = await fetchVia(p.ports.forward!, get(`http://127.0.0.1:${bad.port}/`));
    expect(finals[0]?.status).toBe(502);
    expect(finals[0]!.header("connection")?.toLowerCase()).toBe("close");
    await c.waitFor(() => c.ended, 10_000, "close after the 502");
  }, T);

  test("an origin that accepts and never answers: 504 after --response-timeout 300ms", async () => {
    let accepted = 0;
    const mute = Bun.listen({ hostname: "127.0.0.1", port: 0, allowHalfOpen: true, socket: { open: () => void accepted++, data() {} } });
    servers.push({ stop: () => mute.stop(true) });
    const p = await forwardHttp(["--response-timeout", "300ms"]);
    const { c, finals } = await fetchVia(p.ports.forward!, get(`http://127.0.0.1:${mute.port}/`));
    expect(finals[0]?.status).toBe(504);
    expect(finals[0]!.header("connection")?.toLowerCase()).toBe("close");
    expect(accepted).toBe(1);
    await c.waitFor(() => c.ended, 10_000, "close after the 504");
    expect((await lineFor(p, c)).error).toBe("upstreamTimeout");
  }, T);

  test("a client trickling pipelined bytes does not hold a silent origin open past --response-timeout 300ms", async () => {
    // The next request's bytes wait behind the exchange; they are not the exchange moving. One
    // byte every 50 ms (150 bytes: 7.5 s): before, each byte kept the exchange alive, and the
    // 504 came only after the trickle ran out.
    const mute = Bun.listen({ hostname: "127.0.0.1", port: 0, allowHalfOpen: true, socket: { data() {} } });
    servers.push({ stop: () => mute.stop(true) });
    const p = await forwardHttp(["--response-timeout", "300ms"]);
    const c = await NetClient.connect(p.ports.forward!);
    await c.write(get(`http://127.0.0.1:${mute.port}/`));
    const next = new TextEncoder().encode(`GET http://127.0.0.1:${mute.port}/next HTTP/1.1\r\nX-Pad: ${"z".repeat(150)}`).subarray(0, 150);
    const sent = await dribble(c, next, 50);
    expect(sent, "the trickle ran out before the proxy answered").toBeLessThan(next.length);
    await c.waitFor(() => c.ended, 10_000, "close after the 504");
    const finals = parseResponses(Buffer.concat(c.chunks), [], true).responses;
    expect(finals[0]?.status).toBe(504);
    expect((await lineFor(p, c)).error).toBe("upstreamTimeout");
  }, T);

  test("a destination whose connect never completes (full accept queue): SOCKS5 REP 0x06, HTTP 504 (GET and CONNECT) after --connect-timeout 300ms", async () => {
    const stalled = await stalledPort();
    servers.push(stalled);
    const socks = await forwardSocks(["--connect-timeout", "300ms"]);
    const s = await NetClient.connect(socks.ports.forward!);
    await s.write(socks5Connect("127.0.0.1", stalled.port));
    await s.waitFor(() => s.receivedBytes >= SOCKS5_HEAD_BYTES || s.ended, 10_000, "the SOCKS reply");
    expect(socks5Rep(s)).toBe(0x06);
    await s.waitFor(() => s.ended, 10_000, "close after 0x06");
    const line = await lineFor(socks, s);
    expect(line.termination).toBe("connect-timeout");
    // The detail names the configured limit (the connect itself had what was left of it).
    expect(line.detail).toBe(`127.0.0.1:${stalled.port} not connected within 300 ms; answered REP 0x06 (TTL expired)`);

    const http = await forwardHttp(["--connect-timeout", "300ms"]);
    const viaGet = await fetchVia(http.ports.forward!, get(`http://127.0.0.1:${stalled.port}/`));
    expect(viaGet.finals[0]?.status).toBe(504);
    const viaConnect = await fetchVia(http.ports.forward!, `CONNECT 127.0.0.1:${stalled.port} HTTP/1.1\r\nHost: 127.0.0.1:${stalled.port}\r\n\r\n`);
    expect(viaConnect.finals[0]?.status).toBe(504);
    expect(viaConnect.finals[0]!.header("connection")?.toLowerCase()).toBe("close");
  }, T);

  test("a name whose first address never connects: the next one gets its share of --connect-timeout, not what the first left (SOCKS5 to localhost: 127.0.0.1 and ::1, in either order)", async () => {
    // localhost is 127.0.0.1 and ::1 (lib/dial.ts resolveLocalhost) in the hosts file's order, so
    // both orders are set up: one address stalled, the other an echo server on the same port.
    // With 6 s the first address tried gets 3 s (lib/limits.ts ADDRESS_CONNECT_MIN_MS is 2 s):
    // given the whole 6 s, a stalled first address answered 0x06.
    const socks = await forwardSocks(["--connect-timeout", "6s"]);
    for (const dead of ["127.0.0.1", "::1"] as const) {
      const { stalled, live } = await stalledBeside(dead);
      const c = await NetClient.connect(socks.ports.forward!);
      await c.write(socks5Connect("localhost", stalled.port));
      await c.waitFor(() => c.receivedBytes >= SOCKS5_HEAD_BYTES || c.ended, 20_000, "the SOCKS reply");
      expect([dead, socks5Rep(c)]).toEqual([dead, 0x00]);
      // Method selection (2), then VER REP RSV ATYP, BND.ADDR (4 or 16 bytes: the upstream socket's own address), BND.PORT.
      const head = 2 + 4 + (Buffer.concat(c.chunks)[5] === 0x04 ? 16 : 4) + 2;
      const payload = "through the live address";
      await c.write(payload);
      await c.waitFor(() => c.receivedBytes >= head + payload.length || c.ended, 10_000, "the echo");
      expect(Buffer.concat(c.chunks).subarray(head).toString()).toBe(payload);
      expect(live.accepted).toBe(1);
      c.close();
      const line = await lineFor(socks, c);
      expect(line.target).toBe(`localhost:${stalled.port}`);
    }
  }, T);

  test("a name whose every address fails: the answer is the most telling failure (a refusal: 502), and the log's detail names what became of each address, a share that ran out included (HTTP GET to localhost, either address stalled)", async () => {
    // One loopback address stalled, nothing on the other at that port: in the hosts file's order,
    // one address runs out its share (2 s of 4) or what the other's refusal left, the other refuses.
    const p = await forwardHttp(["--connect-timeout", "4s"]);
    for (const dead of ["127.0.0.1", "::1"] as const) {
      const { stalled } = await stalledBeside(dead, false);
      const via = await fetchVia(p.ports.forward!, get(`http://localhost:${stalled.port}/`));
      expect([dead, via.finals[0]?.status]).toEqual([dead, 502]);
      const line = await lineFor(p, via.c, 20_000);
      expect(line.error).toBe("connectRefused");
      const detail = String(line.detail);
      const [timedOut, refused] = dead === "::1" ? [`\\[::1\\]:${stalled.port}`, `127.0.0.1:${stalled.port}`] : [`127\\.0\\.0\\.1:${stalled.port}`, `[::1]:${stalled.port}`];
      expect(detail.startsWith(`localhost:${stalled.port}: `)).toBe(true);
      expect(detail).toMatch(new RegExp(`${timedOut} not connected within (its \\d+ ms share of |the \\d+ ms left of )?the 4000 ms connect timeout`));
      expect(detail).toContain(`${refused}: ECONNREFUSED`);
    }
  }, T);

  test("reverse: the workload's first address keeps all of --connect-timeout (a hang there is a full accept queue): localhost with one address stalled ends in connect-timeout in the order that tries it first", async () => {
    // The same two set-ups as above (the hosts file decides which address is first): exactly one
    // of them dials the stalled address first, and its client is closed at the timeout (shared
    // as on the forward listener, 3 s of the 6 would have gone to it and the echo answered).
    const ends: string[] = [];
    for (const dead of ["127.0.0.1", "::1"] as const) {
      const { stalled } = await stalledBeside(dead);
      const p = await startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "localhost", "--proxy-port", String(stalled.port), "--connect-timeout", "6s"]);
      const c = await NetClient.connect(p.ports.reverse!);
      await c.write("hello?");
      await c.waitFor(() => c.ended || c.receivedBytes >= 6, 20_000, "the echo or the close");
      c.close();
      ends.push(String((await lineFor(p, c)).termination));
    }
    expect(ends.sort()).toEqual(["client-fin", "connect-timeout"].sort());
  }, T);

  test("HTTP: a request whose client resets while its origin is dialled keeps its place under --max-connections until the dial settles (the next client gets 503)", async () => {
    const stalled = await stalledPort();
    servers.push(stalled);
    const p = await forwardHttp(["--connect-timeout", "60s", "--max-connections", "2"]);
    const active = { listener: "forward" };
    for (let i = 0; i < 2; i++) {
      const c = await RawClient.connect(p.ports.forward!);
      await c.write(get(`http://127.0.0.1:${stalled.port}/`));
      await untilMetric(p, "sidecar_connections_active", active, (v) => v === 1, 10_000, "the request to be dialling");
      c.reset();
      await untilMetric(p, "sidecar_connections_active", active, (v) => v === 0, 10_000, "the record closed at the reset");
    }
    const third = await fetchVia(p.ports.forward!, get(`http://127.0.0.1:${stalled.port}/`));
    expect(third.finals[0]?.status).toBe(503); // it was dialled too: one more socket per try
  }, T);

  test("one listener's abandoned connects stay within its share of the budget: the other listener of a dual proxy still dials", async () => {
    const stalled = await stalledPort(60_000);
    servers.push(stalled);
    const deno = process.env.SIDECAR_PROXY_RUNTIME === "deno";
    // ulimit -n 96: a budget of 4 abandoned connects, 2 for each of the two listeners.
    const args = ["--proxy-type", "dual", "--proxy-protocol", "tcp:socks", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port), "--in-bind", "127.0.0.1", "--connect-timeout", "200ms"];
    const p = await startProxyWrapped("ulimit -n 96", deno ? [...args, "--max-connections", "8"] : args);
    const replies: Array<number | null> = [];
    for (let i = 0; i < 6 && !replies.includes(0x01); i++) {
      const s = await NetClient.connect(p.ports.forward!);
      await s.write(socks5Connect("127.0.0.1", stalled.port));
      await s.waitFor(() => s.receivedBytes >= SOCKS5_HEAD_BYTES || s.ended, 10_000, "the SOCKS reply");
      replies.push(socks5Rep(s));
      s.close();
      if (deno) await untilMetric(p, "sidecar_abandoned_connects", {}, (v) => v === 0, 10_000, "the cancelled connect let go");
    }
    // Bun: the forward listener spent its share (it used to spend the whole budget, and the
    // reverse listener's dials were refused with it); Deno cancels connects: nothing held.
    expect(replies).toEqual(deno ? Array(6).fill(0x06) : [0x06, 0x06, 0x01]);
    expect((await metricsOf(p)).value("sidecar_listener_abandoned_connects", { listener: "forward", protocol: "socks" })).toBe(deno ? 0 : 2);
    const c = await NetClient.connect(p.ports.reverse!);
    await c.roundTrip("the reverse listener still dials;");
    c.close();
  }, T);

  test("connects past --connect-timeout that the kernel still holds are counted; over their budget a dial is refused at once (0x01), never EMFILE; they are let go when the destination answers", async () => {
    const stalled = await stalledPort(60_000);
    servers.push(stalled);
    const deno = process.env.SIDECAR_PROXY_RUNTIME === "deno";
    const args = ["--proxy-type", "forward", "--proxy-protocol", "socks", "--connect-timeout", "200ms"];
    // Under ulimit -n 96 the budget is an eighth of what is left after the 64 reserved fds.
    const p = await startProxyWrapped("ulimit -n 96", deno ? [...args, "--max-connections", "8"] : args);
    const abandoned = async () => (await metricsOf(p)).value("sidecar_abandoned_connects");
    const replies: Array<number | null> = [];
    // Bun cannot cancel a connect: each one stays in SYN-SENT (the full accept queue drops its
    // SYNs) until the budget is spent. Deno cancels it at the deadline: nothing stays.
    for (let i = 0; i < 12 && !replies.includes(0x01); i++) {
      const s = await NetClient.connect(p.ports.forward!);
      await s.write(socks5Connect("127.0.0.1", stalled.port));
      await s.waitFor(() => s.receivedBytes >= SOCKS5_HEAD_BYTES || s.ended, 10_000, "the SOCKS reply");
      replies.push(socks5Rep(s));
      const line = await lineFor(p, s);
      if (replies.at(-1) === 0x01) {
        expect(line.error).toBe("limitExceeded");
        expect(line.detail).toContain("earlier connects that timed out are still held open by the kernel");
      } else {
        expect(line.termination).toBe("connect-timeout");
      }
      s.close();
      if (deno) await untilMetric(p, "sidecar_abandoned_connects", {}, (v) => v === 0, 10_000, "the cancelled connect let go");
    }
    expect(procFdCount(p.pid)).toBeLessThan(96);
    expect((await adminGet(p, "/healthz")).status).toBe(200);
    if (deno) {
      expect(replies).toEqual(Array(12).fill(0x06));
    } else {
      const timedOut = replies.filter((r) => r === 0x06).length;
      expect(replies).toEqual([...Array(timedOut).fill(0x06), 0x01]);
      expect(timedOut).toBeGreaterThan(0);
      expect(await abandoned()).toBe(timedOut);
      // The destination goes away: the next SYN retransmission gets a reset, Bun reports the
      // failure, and the budget is back.
      stalled.stop();
      await untilMetric(p, "sidecar_abandoned_connects", {}, (v) => v === 0, 45_000, "the abandoned connects reported");
    }
    const s = await NetClient.connect(p.ports.forward!);
    await s.write(socks5Connect("127.0.0.1", echo.port));
    await s.waitFor(() => s.receivedBytes >= SOCKS5_HEAD_BYTES || s.ended, 10_000, "the SOCKS reply");
    expect(socks5Rep(s)).toBe(0x00);
    await s.roundTrip("dials again;");
    s.close();
    await p.stop();
  }, 90_000);
});

// ---------------------------------------------------------------------------------------------

/**
 * One flood client: connects, sends a byte, and reports "served" (the echo came back) or
 * "refused" (closed without a byte, or reset before the connect completed). Throws when neither
 * happens within 10 s (a client left hanging). Connected clients are pushed to `open`.
 */
async function floodClient(port: number, open: NetClient[]): Promise<"served" | "refused"> {
  let c: NetClient;
  try {
    c = await NetClient.connect(port, "127.0.0.1", undefined, 10_000);
  } catch (err) {
    if ((err as { code?: string }).code === "ECONNRESET") return "refused";
    throw err;
  }
  open.push(c);
  c.keepChunks = false;
  await c.write("x");
  await c.waitFor(() => c.receivedBytes >= 1 || c.ended, 10_000, "an echo or a close");
  if (c.receivedBytes >= 1) return "served";
  return "refused";
}

describe("floods", () => {
  test("200 clients at once over --max-connections 50: 50 served, 150 closed without a byte, /healthz 200, service resumes", async () => {
    const CAP = 50;
    const FLOOD = 200;
    const p = await reverseTcp(["--max-connections", String(CAP)]);
    const clients: NetClient[] = [];
    const outcomes = await Promise.all(Array.from({ length: FLOOD }, () => floodClient(p.ports.reverse!, clients)));
    const served = clients.filter((c) => c.receivedBytes === 1 && !c.ended);
    expect(served).toHaveLength(CAP);
    expect(outcomes.filter((o) => o === "served")).toHaveLength(CAP);
    expect(outcomes.filter((o) => o === "refused")).toHaveLength(FLOOD - CAP);
    expect((await adminGet(p, "/healthz")).status).toBe(200);
    const m = await metricsOf(p);
    expect(m.value("sidecar_connections_refused_total", { listener: "reverse" })).toBe(FLOOD - CAP);
    expect(m.value("sidecar_connections_active", { listener: "reverse" })).toBe(CAP);
    // The admitted ones still work.
    for (const c of served.slice(0, 5)) await c.roundTrip("y");
    for (const c of clients) c.close();
    await untilMetric(p, "sidecar_connections_active", { listener: "reverse" }, (v) => v === 0, 10_000, "every connection closed");
    const after = await NetClient.connect(p.ports.reverse!);
    await after.roundTrip("normal service;");
    after.close();
  }, T);

  test("under ulimit -n 256: the cap is lowered below the fd limit, 300 clients never make accept spin, service resumes", async () => {
    // Under Deno (no --allow-all) the fd limit cannot be read: the proxy says so, and the
    // operator's --max-connections is what keeps accept away from EMFILE.
    const deno = process.env.SIDECAR_PROXY_RUNTIME === "deno";
    const args = ["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port)];
    const p = await startProxyWrapped("ulimit -n 256", deno ? [...args, "--max-connections", "96"] : args);
    expect(procFdLimit(p.pid)).toBe(256);
    let cap: number;
    if (deno) {
      expect(p.logs.find((l) => l.msg.startsWith("file-descriptor limit unknown")), "a warning that the fd limit is unknown").toBeDefined();
      cap = 96;
    } else {
      const warn = p.logs.find((l) => l.msg.startsWith("connection cap lowered"));
      expect(warn, "a log line saying the connection cap was lowered").toBeDefined();
      expect(warn!.fdLimit).toBe(256);
      cap = Number(warn!.effective);
    }
    expect(cap).toBeGreaterThan(0);
    expect(2 * cap).toBeLessThan(256); // two fds per tunnel must fit

    // 300 clients: more than the fd limit allows the proxy to hold (2 fds per tunnel).
    const FLOOD = 300;
    const clients: NetClient[] = [];
    // Every client gets an answer (an echo, or a close without a byte); none is left hanging in
    // an accept queue the proxy cannot drain (floodClient throws after 10 s without either).
    const outcomes = await Promise.all(Array.from({ length: FLOOD }, () => floodClient(p.ports.reverse!, clients)));
    const served = outcomes.filter((o) => o === "served").length;
    expect(outcomes.filter((o) => o === "refused")).toHaveLength(FLOOD - served);
    expect(served).toBe(cap);
    expect(procFdCount(p.pid)).toBeLessThan(256);
    expect((await adminGet(p, "/healthz")).status).toBe(200);

    // CPU while idle with the flood's connections still open: an accept loop spinning on EMFILE
    // burns a whole core (measured ~0.85 s of CPU per second without the cap); an idle proxy
    // uses ~0. This is a CPU-usage check over a 1 s window, not a timing check.
    const cpu0 = procCpuSeconds(p.pid);
    await Bun.sleep(1_000);
    const cpuDelta = procCpuSeconds(p.pid) - cpu0;
    expect(cpuDelta).toBeLessThan(0.5);

    for (const c of clients) c.close();
    await untilMetric(p, "sidecar_connections_active", { listener: "reverse" }, (v) => v === 0, 10_000, "every connection closed");
    const after = await NetClient.connect(p.ports.reverse!);
    await after.roundTrip("service resumed;");
    after.close();
    await p.stop();
  }, T);
});

describe("stdout", () => {
  test("the log reader closes its end: lines are dropped, connections are still served, SIGTERM still exits 0", async () => {
    const args = ["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port)];
    const proc = Bun.spawn(proxyCommand([...args, "--proxy-in-port", "0", "--in-bind", "127.0.0.1", "--admin-port", "0", "--log-format", "json", "--drain-delay", "0"]), {
      env: cleanEnv(),
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    const stderr = new Response(proc.stderr).text();
    try {
      // Read up to the "ready" line (it names the ports), then close the pipe's read end.
      const reader = proc.stdout.getReader();
      const decoder = new TextDecoder();
      let text = "";
      while (!text.split("\n").some((l) => l.includes('"msg":"ready"'))) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stdout ended before "ready": ${text}\n${await stderr}`);
        text += decoder.decode(value, { stream: true });
      }
      const ready = JSON.parse(text.split("\n").find((l) => l.includes('"msg":"ready"'))!) as { listeners: Record<string, Array<{ port: number }>> };
      const port = ready.listeners.reverse![0]!.port;
      await reader.cancel();

      // Each finished connection logs a line, into a pipe nobody reads any more (EPIPE).
      for (let i = 0; i < 20; i++) {
        const c = await NetClient.connect(port);
        await c.roundTrip(`after the reader left #${i};`);
        c.close();
      }
      expect(proc.exitCode).toBeNull();
      // A write error is not a fault of the proxy's code: nothing was caught by a fault barrier.
      const metrics = await (await fetch(`http://127.0.0.1:${ready.listeners.admin![0]!.port}/metrics`)).text();
      expect(metrics).toMatch(/^sidecar_internal_errors_total 0$/m);
      expect(metrics).toMatch(/^sidecar_connections_total\{[^}]*listener="reverse"[^}]*\} 20$/m);
      // The lines that met the closed pipe are counted as dropped (all but those of the write
      // that found it closed: one event-loop turn's, here one or two).
      const dropped = Number(/^sidecar_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1]);
      expect(dropped).toBeGreaterThanOrEqual(10);
      expect(dropped).toBeLessThanOrEqual(20);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(await stderr).toBe("");
    } finally {
      proc.kill("SIGKILL");
    }
  }, T);

  test("a log reader that stops reading: past LOG_QUEUE_MAX_BYTES lines are dropped and counted, service goes on, and every connection is either logged or counted", async () => {
    // proxy -> FIFO -> cat -> file; cat is stopped (SIGSTOP) so the pipe fills and lines queue.
    const dir = mkdtempSync(join(tmpdir(), "sidecar-proxy-stalled-log-"));
    const fifo = join(dir, "stdout.fifo");
    const logFile = join(dir, "stdout.log");
    const readyFile = join(dir, "ready.json");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const cat = Bun.spawn(["bash", "-c", 'exec cat "$0" > "$1"', fifo, logFile], { stdin: "ignore", stdout: "ignore", stderr: "inherit" });
    const args = ["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port)];
    const command = proxyCommand([...args, "--proxy-in-port", "0", "--in-bind", "127.0.0.1", "--admin-port", "0", "--log-format", "json", "--drain-delay", "0", "--ready-file", readyFile]);
    const proc = Bun.spawn(["bash", "-c", 'exec "$@" > "$FIFO"', "bash", ...command], { env: cleanEnv({ FIFO: fifo }), stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const stderr = new Response(proc.stderr).text();
    const connectionLines = () => readFileSync(logFile, "utf8").split("\n").filter((l) => l.includes('"msg":"connection"'));
    try {
      await until(() => existsSync(readyFile), (ok) => ok, 20_000, "the ready file", 5);
      const ready = JSON.parse(readFileSync(readyFile, "utf8")) as Record<string, Array<{ port: number }>>;
      const port = ready.reverse![0]!.port;
      const metrics = async () => (await fetch(`http://127.0.0.1:${ready.admin![0]!.port}/metrics`)).text();
      const dropped = async () => Number(/^sidecar_log_lines_dropped_total (\d+)$/m.exec(await metrics())?.[1]);

      // One connection while cat reads, to learn how long a connection's line is.
      const first = await NetClient.connect(port);
      await first.roundTrip("measure;");
      first.close();
      const lines = await until(connectionLines, (l) => l.length === 1, 10_000, "the first connection line", 5);
      const lineBytes = lines[0]!.length + 1;

      cat.kill("SIGSTOP");
      // Enough lines to fill a pipe (64 KiB by default; 256 KiB allowed for) and the queue, and more.
      const n = Math.ceil((LOG_QUEUE_MAX_BYTES + 256 * 1024) / lineBytes) + 500;
      const CONCURRENCY = 16;
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < n) {
            const i = next++;
            const c = await NetClient.connect(port);
            await c.roundTrip(`#${i};`);
            c.close();
          }
        }),
      );
      const active = async () => Number(/^sidecar_connections_active\{listener="reverse"[^}]*\} (\d+)$/m.exec(await metrics())?.[1]);
      await until(active, (v) => v === 0, 20_000, "every connection finished (its line written or dropped)");
      const droppedWhileStalled = await dropped();
      expect(droppedWhileStalled).toBeGreaterThan(0);
      expect(droppedWhileStalled).toBeLessThan(n);

      // The reader resumes: what was queued drains, then the next line comes with a notice.
      cat.kill("SIGCONT");
      await until(() => connectionLines().length, (count) => count >= n + 1 - droppedWhileStalled, 20_000, "the queued lines", 10);
      const last = await NetClient.connect(port);
      await last.roundTrip("after;");
      last.close();
      await until(() => connectionLines().length, (count) => count === n + 2 - droppedWhileStalled, 20_000, "the line of the connection after the reader resumed", 10);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(await cat.exited).toBe(0); // EOF once the proxy is gone

      const records = readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as LogLine);
      const notices = records.filter((r) => r.msg === "log lines dropped");
      expect(notices).toHaveLength(1);
      expect(notices[0]!.level).toBe("warn");
      expect(notices[0]!.lines).toBe(droppedWhileStalled);
      // Every connection is accounted for: logged, or counted as dropped.
      expect(records.filter((r) => r.msg === "connection").length + droppedWhileStalled).toBe(n + 2);
      // The notice comes right before the first line written after the drops, which is not
      // necessarily the last connection's: the queue may have had room before it.
      const at = records.indexOf(notices[0]!);
      expect(records[at + 1]?.msg).toBe("connection");
      expect(records.at(-1)?.msg).toBe("stopped");
      expect(await stderr).toBe("");
    } finally {
      proc.kill("SIGKILL");
      cat.kill("SIGCONT");
      cat.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
