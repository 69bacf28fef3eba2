/**
 * Admin endpoint end to end (SPEC §6, issue #5): /healthz, /readyz, /metrics in the Prometheus
 * text format (checked by a strict parser: HELP/TYPE for every family, cumulative histograms,
 * `_count` == the +Inf bucket), exact byte counters after known traffic, error and latency
 * series, a `curl` scrape while 20 tunnels stream, /connections with live bytes and termination
 * codes, unknown paths, and `--no-admin` leaving nothing listening but the proxy's own listeners.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type TestServer, closedPort, echoServer, patternChunk } from "./helpers/net.ts";
import { type Origin, httpOrigin, parseResponses } from "./helpers/origins.ts";
import { type RunningProxy, killAll, startProxy } from "./helpers/proxy.ts";
import pkg from "../package.json" with { type: "json" };
import {
  NetClient,
  SOCKS5_HEAD_BYTES,
  adminGet,
  connectionsOf,
  metricsOf,
  parsePrometheus,
  procListeningSockets,
  socks5Connect,
  socks5Rep,
  until,
} from "./helpers/hardening.ts";

const T = 30_000;

let echo: TestServer;
let origin: Origin;

beforeAll(() => {
  echo = echoServer();
  origin = httpOrigin();
});

afterAll(() => {
  killAll();
  echo?.stop();
  origin?.stop();
});

const reverseTcp = (extra: string[] = []) =>
  startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port), ...extra]);
const dualTcpSocks = (extra: string[] = []) =>
  startProxy(["--proxy-type", "dual", "--proxy-protocol", "tcp:socks", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port), ...extra]);

/** One raw request to the admin port; returns the whole answer once the server closed. */
async function rawAdmin(p: RunningProxy, request: string): Promise<string> {
  const c = await NetClient.connect(p.ports.admin!);
  await c.write(request);
  await c.waitFor(() => c.ended, 10_000, "the admin answer");
  return c.text();
}

/** Sends `bytes` through an echo tunnel, waits for all of them back, then FIN and waits for FIN. */
async function echoAndFinish(c: NetClient, bytes: Uint8Array): Promise<void> {
  const want = c.receivedBytes + bytes.byteLength;
  await c.write(bytes);
  await c.waitFor(() => c.receivedBytes >= want, 10_000, "the echo");
  c.halfClose();
  await c.waitFor(() => c.gotFin, 10_000, "FIN back");
}

// ---------------------------------------------------------------------------------------------

describe("probes and paths", () => {
  test("/healthz 200, /readyz 200 when ready, unknown path 404, non-GET 405, query strings ignored", async () => {
    const p = await reverseTcp();
    const health = await adminGet(p, "/healthz");
    expect(health.status).toBe(200);
    expect(health.body).toBe("ok\n");
    expect(health.type).toStartWith("text/plain");
    const ready = await adminGet(p, "/readyz");
    expect(ready.status).toBe(200);
    expect((await adminGet(p, "/readyz?verbose=1")).status).toBe(200);
    const missing = await adminGet(p, "/nope");
    expect(missing.status).toBe(404);
    expect((await adminGet(p, "/")).status).toBe(404);
    expect((await adminGet(p, "/metricsx")).status).toBe(404);
    const post = await rawAdmin(p, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    expect(post).toStartWith("HTTP/1.1 405 ");
    expect(post).toContain("\r\nAllow: GET, HEAD\r\n"); // RFC 9110 §15.5.6
    const m = parsePrometheus((await adminGet(p, "/metrics")).body);
    expect(m.value("sidecar_ready")).toBe(1);
    // The release and the runtime, on the ready line and as sidecar_build_info's labels.
    const { version } = pkg;
    const line = p.logs.find((l) => l.msg === "ready")!;
    expect(line.version).toBe(version);
    expect(line.runtime).toMatch(/^(bun|deno) \d+\.\d+\.\d+/);
    expect(m.families.get("sidecar_build_info")!.type).toBe("gauge");
    expect(m.value("sidecar_build_info", { version, runtime: line.runtime as string })).toBe(1);
  }, T);

  test("bare-LF lines, leading empty lines and absolute-form are served; bytes that are no HTTP request line get 400", async () => {
    const p = await reverseTcp();
    expect(await rawAdmin(p, "GET /healthz HTTP/1.1\nHost: x\n\n")).toStartWith("HTTP/1.1 200 ");
    expect(await rawAdmin(p, `GET http://127.0.0.1:${p.ports.admin}/readyz HTTP/1.1\r\nHost: x\r\n\r\n`)).toStartWith("HTTP/1.1 200 ");
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    expect(await rawAdmin(p, "\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).toStartWith("HTTP/1.1 200 ");
    expect(await rawAdmin(p, "\x16\x03\x01 hello\r\n\r\n")).toStartWith("HTTP/1.1 400 ");
    expect(await rawAdmin(p, "GET /healthz\r\n\r\n")).toStartWith("HTTP/1.1 400 ");
  }, T);

  test("at most 32 admin connections at once: one more evicts the oldest still waiting for its request, and is answered", async () => {
    const p = await reverseTcp();
    const held: NetClient[] = [];
    try {
      for (let i = 0; i < 32; i++) held.push(await NetClient.connect(p.ports.admin!));
      // Accepted in order from the backlog: the 33rd finds 32 open, none with a request in, and
      // the oldest of them makes room (a probe is not locked out by idle connections).
      const probe = await NetClient.connect(p.ports.admin!);
      await probe.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      await probe.waitFor(() => probe.ended, 10_000, "the probe's answer");
      expect(probe.text()).toStartWith("HTTP/1.1 200 ");
      await held[0]!.waitFor(() => held[0]!.ended, 10_000, "the oldest idle admin connection to be closed");
      expect(held[0]!.receivedBytes).toBe(0);
      const c = await NetClient.connect(p.ports.reverse!);
      await c.roundTrip("the data plane is not held up;");
      c.halfClose();
    } finally {
      for (const h of held) h.close();
    }
  }, T);

  test("HEAD /healthz: 200 with headers only (RFC 9110 §9.3.2: a HEAD response has no content)", async () => {
    const p = await reverseTcp();
    const answer = await rawAdmin(p, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(answer).toStartWith("HTTP/1.1 200 ");
    const end = answer.indexOf("\r\n\r\n");
    expect(end).toBeGreaterThan(0);
    expect(JSON.stringify(answer.slice(end + 4))).toBe('""');
  }, T);

  test("/readyz turns 503 while draining; /healthz stays 200", async () => {
    const p = await reverseTcp(["--drain-delay", "20s"]);
    expect((await adminGet(p, "/readyz")).status).toBe(200);
    p.signal("SIGTERM");
    await p.waitForLog((l) => l.msg === "draining", 10_000, "draining");
    const ready = await adminGet(p, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toContain("draining");
    expect((await adminGet(p, "/healthz")).status).toBe(200);
    expect((await metricsOf(p)).value("sidecar_ready")).toBe(0);
    await p.stop();
  }, T);

  test("the admin endpoint listens on 127.0.0.1 only", async () => {
    const p = await reverseTcp();
    const sockets = procListeningSockets(p.pid).sort();
    expect(sockets).toEqual([`127.0.0.1:${p.ports.admin}`, `127.0.0.1:${p.ports.reverse}`].sort());
  }, T);

  test("--no-admin: no admin entry in the ready line and nothing listens but the proxy listener", async () => {
    const p = await reverseTcp(["--no-admin"]);
    const ready = p.logs.find((l) => l.msg === "ready")!;
    expect(Object.keys(ready.listeners as object)).toEqual(["reverse"]);
    expect(p.ports.admin).toBeUndefined();
    expect(p.logs.some((l) => l.msg === "listening" && l.listener === "admin")).toBe(false);
    expect(procListeningSockets(p.pid)).toEqual([`127.0.0.1:${p.ports.reverse}`]);
    // ...and the proxy itself still works.
    const c = await NetClient.connect(p.ports.reverse!);
    await c.roundTrip("still proxying;");
    c.close();
  }, T);
});

// ---------------------------------------------------------------------------------------------

describe("/metrics", () => {
  test("reverse tcp + forward socks: exact bytes each way, totals, connectRefused, histogram counts", async () => {
    const p = await dualTcpSocks();
    // Before any traffic: every family is there and parses.
    const empty = await metricsOf(p);
    for (const family of [
      "sidecar_ready",
      "sidecar_connections_active",
      "sidecar_orphaned_dials",
      "sidecar_connections_total",
      "sidecar_bytes_total",
      "sidecar_errors_total",
      "sidecar_connect_duration_seconds",
      "sidecar_handshake_duration_seconds",
      "sidecar_internal_errors_total",
    ]) {
      expect(empty.families.has(family), family).toBe(true);
    }
    expect(empty.families.get("sidecar_internal_errors_total")!.type).toBe("counter");
    expect(empty.value("sidecar_internal_errors_total")).toBe(0);
    expect(empty.families.get("sidecar_connections_total")!.type).toBe("counter");
    expect(empty.families.get("sidecar_connections_active")!.type).toBe("gauge");
    expect(empty.families.get("sidecar_connect_duration_seconds")!.type).toBe("histogram");

    // Reverse tcp: two tunnels with known byte counts, both finished.
    const sizes = [1_000, 70_001];
    for (const [i, n] of sizes.entries()) {
      const c = await NetClient.connect(p.ports.reverse!);
      c.keepChunks = false;
      await echoAndFinish(c, patternChunk(i + 1, n));
      c.close();
    }
    // Forward socks: one tunnel to the echo server, one to a closed port.
    const s = await NetClient.connect(p.ports.forward!);
    await s.write(socks5Connect("127.0.0.1", echo.port));
    await s.waitFor(() => s.receivedBytes >= SOCKS5_HEAD_BYTES, 10_000, "SOCKS reply");
    expect(socks5Rep(s)).toBe(0x00);
    await echoAndFinish(s, patternChunk(9, 300));
    s.close();
    const refused = await NetClient.connect(p.ports.forward!);
    await refused.write(socks5Connect("127.0.0.1", closedPort()));
    await refused.waitFor(() => refused.ended, 10_000, "the refused SOCKS request to be closed");
    expect(socks5Rep(refused)).toBe(0x05);

    const m = await until(
      () => metricsOf(p),
      (v) => v.sum("sidecar_connections_active") === 0,
      10_000,
      "no active connection",
    );
    const rev = { listener: "reverse", protocol: "tcp" };
    const fwd = { listener: "forward", protocol: "socks" };
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(m.value("sidecar_connections_total", rev)).toBe(2);
    expect(m.value("sidecar_connections_total", fwd)).toBe(2);
    expect(m.value("sidecar_bytes_total", { ...rev, direction: "up" })).toBe(total);
    expect(m.value("sidecar_bytes_total", { ...rev, direction: "down" })).toBe(total);
    expect(m.value("sidecar_bytes_total", { ...fwd, direction: "up" })!).toBeGreaterThanOrEqual(300);
    expect(m.value("sidecar_bytes_total", { ...fwd, direction: "down" })!).toBeGreaterThanOrEqual(300);
    expect(m.value("sidecar_errors_total", { ...fwd, kind: "connectRefused" })).toBe(1);
    expect(m.value("sidecar_errors_total", { ...rev, kind: "connectRefused" })).toBeUndefined();
    // Connect latency: one observation per successful upstream connect.
    expect(m.value("sidecar_connect_duration_seconds_count", rev)).toBe(2);
    expect(m.value("sidecar_connect_duration_seconds_bucket", { ...rev, le: "+Inf" })).toBe(2);
    expect(m.value("sidecar_connect_duration_seconds_count", fwd)).toBe(1);
    // Handshake latency: one per parsed SOCKS request.
    expect(m.value("sidecar_handshake_duration_seconds_count", fwd)).toBe(2);
    expect(m.value("sidecar_connect_duration_seconds_sum", rev)!).toBeGreaterThanOrEqual(0);
  }, T);

  test("forward http: requests, a 502 for a refused origin, connections and handshake counts", async () => {
    const p = await startProxy(["--proxy-type", "forward", "--proxy-protocol", "http"]);
    const c = await NetClient.connect(p.ports.forward!);
    const url = origin.url("/hello");
    await c.write(`GET ${url} HTTP/1.1\r\nHost: x\r\n\r\nGET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await c.waitFor(() => parseResponses(Buffer.concat(c.chunks)).responses.filter((r) => r.complete).length >= 2, 10_000, "two responses");
    c.close();
    const bad = await NetClient.connect(p.ports.forward!);
    await bad.write(`GET http://127.0.0.1:${closedPort()}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    await bad.waitFor(() => bad.ended, 10_000, "the 502 and close");
    expect(bad.text()).toStartWith("HTTP/1.1 502 ");
    const m = await until(() => metricsOf(p), (v) => v.sum("sidecar_connections_active") === 0, 10_000, "no active connection");
    const fwd = { listener: "forward", protocol: "http" };
    expect(m.value("sidecar_connections_total", fwd)).toBe(2);
    expect(m.value("sidecar_errors_total", { ...fwd, kind: "connectRefused" })).toBe(1);
    expect(m.value("sidecar_handshake_duration_seconds_count", fwd)).toBe(2);
    expect(m.value("sidecar_connect_duration_seconds_count", fwd)).toBeGreaterThanOrEqual(1);
    expect(m.value("sidecar_bytes_total", { ...fwd, direction: "down" })!).toBeGreaterThanOrEqual(2 * "hello from origin".length);
  }, T);

  test("curl scrapes /metrics while 20 tunnels stream; counters move; the totals are exact at the end", async () => {
    const p = await reverseTcp();
    const TUNNELS = 20;
    const CHUNK = patternChunk(5, 16 * 1024);
    // The writers stream until the scrapes are done (`stop`); this only bounds a broken run:
    // per tunnel at most 64 MiB each way. (A small bound let fast runs finish streaming before
    // the fifth scrape, which then waited for progress that could not come.)
    const MAX_CHUNKS = 4096;
    let stop = false;
    const clients = await Promise.all(Array.from({ length: TUNNELS }, () => NetClient.connect(p.ports.reverse!)));
    const sent = new Array<number>(TUNNELS).fill(0);
    const writers = clients.map(async (c, i) => {
      c.keepChunks = false;
      for (let n = 0; n < MAX_CHUNKS && !stop; n++) {
        await c.write(CHUNK);
        sent[i]! += CHUNK.byteLength;
        // Keep at most 256 KiB in flight per tunnel, so the proxy never has to buffer much.
        await c.waitFor(() => c.receivedBytes >= sent[i]! - 256 * 1024 || c.ended, 10_000, "echo progress");
      }
    });
    const received = () => clients.reduce((a, c) => a + c.receivedBytes, 0);
    let lastUp = -1;
    for (let scrape = 0; scrape < 5; scrape++) {
      // Wait until more bytes went through since the last scrape (bounded), then scrape.
      const before = received();
      await until(received, (v) => v > before, 10_000, "streaming progress");
      const proc = Bun.spawn(["curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}", `http://127.0.0.1:${p.ports.admin}/metrics`], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect(code, err).toBe(0);
      const status = out.slice(out.lastIndexOf("\n") + 1);
      expect(status).toBe("200");
      const m = parsePrometheus(out.slice(0, out.lastIndexOf("\n")));
      expect(m.value("sidecar_connections_active", { listener: "reverse" })).toBe(TUNNELS);
      const up = m.value("sidecar_bytes_total", { listener: "reverse", direction: "up" })!;
      expect(up).toBeGreaterThan(lastUp); // live counters, not only finished tunnels
      lastUp = up;
    }
    stop = true;
    await Promise.all(writers);
    const totalSent = sent.reduce((a, b) => a + b, 0);
    await until(received, (v) => v >= totalSent, 20_000, "every echo");
    for (const c of clients) c.halfClose();
    await Promise.all(clients.map((c) => c.waitFor(() => c.gotFin, 10_000, "FIN")));
    const m = await until(() => metricsOf(p), (v) => v.sum("sidecar_connections_active") === 0, 10_000, "no active connection");
    expect(m.value("sidecar_bytes_total", { listener: "reverse", direction: "up" })).toBe(totalSent);
    expect(m.value("sidecar_bytes_total", { listener: "reverse", direction: "down" })).toBe(totalSent);
    expect(m.value("sidecar_connections_total", { listener: "reverse" })).toBe(TUNNELS);
    for (const c of clients) c.close();
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------

describe("/connections", () => {
  test("an active tunnel with client, target and live bytes; closed ones with termination codes", async () => {
    const p = await dualTcpSocks();
    const c = await NetClient.connect(p.ports.reverse!);
    await c.roundTrip("x".repeat(1000));
    const me = `127.0.0.1:${c.localPort}`;
    let view = await connectionsOf(p);
    expect(view.active).toHaveLength(1);
    expect(view.activeCount).toBe(1);
    const a = view.active[0]!;
    expect(a.client).toBe(me);
    expect(a.target).toBe(`127.0.0.1:${echo.port}`);
    expect(a.listener).toBe("reverse");
    expect(a.protocol).toBe("tcp");
    expect(a.bytesUp).toBe(1000);
    expect(a.bytesDown).toBe(1000);
    expect(a.termination).toBeNull();
    expect(a.ageMs).toBeGreaterThanOrEqual(0);
    expect(typeof a.connectMs).toBe("number");
    // Live: more bytes show up while the tunnel is still open.
    await c.roundTrip("y".repeat(500));
    view = await connectionsOf(p);
    expect(view.active[0]!.bytesUp).toBe(1500);
    expect(view.active[0]!.bytesDown).toBe(1500);

    c.halfClose();
    await c.waitFor(() => c.gotFin, 10_000, "FIN");
    const refused = await NetClient.connect(p.ports.forward!);
    const dead = closedPort();
    await refused.write(socks5Connect("127.0.0.1", dead));
    await refused.waitFor(() => refused.ended, 10_000, "the refused request to be closed");

    view = await until(() => connectionsOf(p), (v) => v.active.length === 0 && v.recent.length === 2, 10_000, "two recent connections");
    const done = view.recent.find((r) => r.client === me)!;
    expect(done).toBeDefined();
    expect(done.termination).toBe("client-fin");
    expect(done.bytesUp).toBe(1500);
    expect(done.bytesDown).toBe(1500);
    const failed = view.recent.find((r) => r.listener === "forward")!;
    expect(failed.target).toBe(`127.0.0.1:${dead}`);
    expect(failed.termination).toBe("connect-refused");
    expect(failed.error).toBe("connectRefused"); // the kind and the detail, as the log line names them
    expect(failed.detail).toBeTruthy();
    // Most recent first.
    expect(view.recent[0]!.id).toBeGreaterThan(view.recent[1]!.id);
  }, T);

  test("at most 500 active connections are listed (the oldest); activeCount counts them all", async () => {
    const p = await reverseTcp();
    const clients: NetClient[] = [];
    try {
      for (let i = 0; i < 510; i++) clients.push(await NetClient.connect(p.ports.reverse!));
      for (const c of clients) await c.roundTrip("x"); // each tunnel is open at the far end
      const view = await until(() => connectionsOf(p), (v) => v.activeCount === 510, 10_000, "510 active");
      expect(view.active).toHaveLength(500);
      const ids = view.active.map((a) => a.id);
      expect(ids).toEqual([...ids].sort((a, b) => a - b)); // oldest first
      expect(view.active.map((a) => a.client)).toContain(`127.0.0.1:${clients[0]!.localPort}`);
    } finally {
      for (const c of clients) c.close();
    }
  }, 60_000);
});
