/**
 * Limits, timeouts and access control end to end (issue #5, SPEC §4/§5), through a real proxy
 * process on loopback: the per-listener connection cap on reverse tcp, forward socks and forward
 * http; tunnel idle, half-closed and keep-alive idle timeouts; `--allow-clients` at accept
 * (IPv4, IPv6, IPv4-mapped entries); `--deny-destinations` on the dialled address (literal
 * addresses, IPv4-mapped IPv6 literals, names that resolve to a denied address, the `private`
 * preset).
 *
 * Timeouts are configured short (300 ms) and each test then waits, with a generous bound, for the
 * observable effect (a close, a log line, a metric). Where a test needs a tunnel to stay busy, it
 * sends a byte every 30 ms: 10x inside the 300 ms limit.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type TestServer, echoServer } from "./helpers/net.ts";
import { type Origin, httpOrigin, parseResponses, type WireResponse } from "./helpers/origins.ts";
import { type LogLine, type RunningProxy, killAll, startProxy } from "./helpers/proxy.ts";
import { NetClient, SOCKS5_HEAD_BYTES, expectRefusedSilently, connectionsOf, metricsOf, socks5Connect, socks5Connect6, socks5Rep, untilMetric } from "./helpers/hardening.ts";

const T = 30_000;
const HELLO = "hello from origin";

let echo: TestServer; // 127.0.0.1
let echo3: TestServer; // 127.0.0.3: only reachable if the deny list fails
let origin: Origin; // 127.0.0.1
let origin3: Origin; // 127.0.0.3
const servers: Array<{ stop(): void }> = [];

beforeAll(() => {
  echo = echoServer("127.0.0.1");
  echo3 = echoServer("127.0.0.3");
  origin = httpOrigin("127.0.0.1");
  origin3 = httpOrigin("127.0.0.3");
});

afterAll(() => {
  killAll();
  for (const s of [echo, echo3, origin, origin3, ...servers]) s?.stop();
});

const reverseTcp = (port: number, extra: string[] = []) =>
  startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(port), ...extra]);
const forwardSocks = (extra: string[] = []) => startProxy(["--proxy-type", "forward", "--proxy-protocol", "socks", ...extra]);
const forwardHttp = (extra: string[] = []) => startProxy(["--proxy-type", "forward", "--proxy-protocol", "http", ...extra]);

/** The connection log line of the client at 127.0.0.1:<port> (or another source address). */
function lineFor(p: RunningProxy, c: NetClient, timeoutMs = 10_000): Promise<LogLine> {
  const client = c.localAddress.includes(":") ? `[${c.localAddress}]:${c.localPort}` : `${c.localAddress}:${c.localPort}`;
  return p.waitForLog((l) => l.msg === "connection" && l.client === client, timeoutMs, `connection log line of ${client}`);
}

function hasLineFor(p: RunningProxy, c: NetClient): boolean {
  return p.logs.some((l) => l.msg === "connection" && typeof l.client === "string" && l.client.endsWith(`:${c.localPort}`));
}

/** A SOCKS5 CONNECT through the proxy; resolves once the reply is in (or the proxy closed). */
async function socksOpen(port: number, request: Uint8Array, localAddress?: string): Promise<NetClient> {
  const c = await NetClient.connect(port, "127.0.0.1", localAddress);
  await c.write(request);
  await c.waitFor(() => c.receivedBytes >= SOCKS5_HEAD_BYTES || c.ended, 10_000, "SOCKS5 reply");
  return c;
}

function responses(c: NetClient): WireResponse[] {
  return parseResponses(Buffer.concat(c.chunks), [], c.ended).responses.filter((r) => r.status >= 200);
}

/** Sends a request and waits for the n-th final response on this connection to be complete. */
async function httpRequest(c: NetClient, request: string, n: number): Promise<WireResponse> {
  await c.write(request);
  await c.waitFor(() => c.ended || (responses(c).length >= n && responses(c)[n - 1]!.complete), 10_000, `response #${n}`);
  const r = responses(c)[n - 1];
  if (!r) throw new Error(`no response #${n}; got ${JSON.stringify(c.text().slice(0, 300))}`);
  return r;
}

const get = (url: string) => `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n\r\n`;

// ---------------------------------------------------------------------------------------------

describe("--max-connections 3: the 4th is refused at once, the 3 open ones keep working", () => {
  test("reverse tcp: closed without a byte; after one closes, a new one is admitted", async () => {
    const p = await reverseTcp(echo.port, ["--max-connections", "3"]);
    const open = [];
    for (let i = 0; i < 3; i++) {
      const c = await NetClient.connect(p.ports.reverse!);
      await c.roundTrip(`open ${i};`);
      open.push(c);
    }
    await expectRefusedSilently(p.ports.reverse!, "127.0.0.1", "let me in");
    for (const c of open) await c.roundTrip("still here;");
    const m = await metricsOf(p);
    expect(m.value("sidecar_connections_refused_total", { listener: "reverse" })).toBe(1);
    expect(m.value("sidecar_connections_active", { listener: "reverse" })).toBe(3);
    expect(m.value("sidecar_errors_total", { listener: "reverse", kind: "limitExceeded" })).toBe(1);
    // The first refusal is named in the log, with what holds the cap (then one line per
    // CAP_WARN_INTERVAL_MS at most, the rest at its end: tests/log.test.ts ThrottledLine).
    const warning = await p.waitForLog((l) => l.msg === "over the connection cap: refusing new connections", 10_000, "the cap warning");
    expect(warning).toMatchObject({ level: "warn", listener: "reverse", cap: 3, refused: 1, active: 3, orphanDials: 0, abandonedConnects: 0 });

    open[0]!.close();
    await untilMetric(p, "sidecar_connections_active", { listener: "reverse" }, (v) => v === 2, 10_000, "2 active");
    const next = await NetClient.connect(p.ports.reverse!);
    await next.roundTrip("admitted;");
    for (const c of [next, ...open]) c.close();
  }, T);

  test("forward socks: SOCKS5 closed without a reply, SOCKS4 answered 0x5B; after one closes, a new one is admitted", async () => {
    const p = await forwardSocks(["--max-connections", "3"]);
    const open = [];
    for (let i = 0; i < 3; i++) {
      const c = await socksOpen(p.ports.forward!, socks5Connect("127.0.0.1", echo.port));
      expect(socks5Rep(c)).toBe(0x00);
      await c.roundTrip(`open ${i};`);
      open.push(c);
    }
    await expectRefusedSilently(p.ports.forward!, "127.0.0.1", socks5Connect("127.0.0.1", echo.port));
    // SPEC §4: a SOCKS4 request over a limit is answered CD 0x5B (it was closed without a reply),
    // then the close: a FIN, not a reset that could destroy the reply.
    const socks4 = await NetClient.connect(p.ports.forward!);
    await socks4.write(Uint8Array.of(0x04, 0x01, echo.port >> 8, echo.port & 0xff, 127, 0, 0, 1, 0x75, 0x00));
    await socks4.waitFor(() => socks4.ended, 10_000, "the refused SOCKS4 client to be answered and closed");
    expect([...Buffer.concat(socks4.chunks)]).toEqual([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
    expect(socks4.hadError).toBeUndefined();
    for (const c of open) await c.roundTrip("still here;");
    expect((await metricsOf(p)).value("sidecar_connections_refused_total", { listener: "forward" })).toBe(2);

    open[0]!.close();
    await untilMetric(p, "sidecar_connections_active", { listener: "forward" }, (v) => v === 2, 10_000, "2 active");
    const next = await socksOpen(p.ports.forward!, socks5Connect("127.0.0.1", echo.port));
    expect(socks5Rep(next)).toBe(0x00);
    await next.roundTrip("admitted;");
    for (const c of [next, ...open]) c.close();
  }, T);

  test("forward http: 503 with Connection: close; keep-alive connections keep being served", async () => {
    const p = await forwardHttp(["--max-connections", "3"]);
    const url = origin.url("/hello");
    const open = [];
    for (let i = 0; i < 3; i++) {
      const c = await NetClient.connect(p.ports.forward!);
      const r = await httpRequest(c, get(url), 1);
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(HELLO);
      open.push(c);
    }
    const fourth = await NetClient.connect(p.ports.forward!);
    await fourth.waitFor(() => fourth.ended, 10_000, "the 4th connection to be answered and closed");
    const [r503] = responses(fourth);
    expect(r503?.status).toBe(503);
    expect(r503!.header("connection")?.toLowerCase()).toBe("close");
    expect(r503!.complete).toBe(true);
    expect(responses(fourth)).toHaveLength(1);
    // A real client that sends its request at once (the 503 must not be lost to a reset).
    for (let i = 0; i < 3; i++) {
      const r = Bun.spawnSync(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--noproxy", "", "-x", `http://127.0.0.1:${p.ports.forward}`, url], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      });
      expect(r.stdout.toString(), r.stderr.toString()).toBe("503");
    }
    // The three admitted connections are kept alive and serve a second request each.
    for (const c of open) {
      const r = await httpRequest(c, get(url), 2);
      expect(r.status).toBe(200);
      expect(c.ended).toBe(false);
    }
    open[0]!.close();
    await untilMetric(p, "sidecar_connections_active", { listener: "forward" }, (v) => v === 2, 10_000, "2 active");
    const next = await NetClient.connect(p.ports.forward!);
    expect((await httpRequest(next, get(url), 1)).status).toBe(200);
    for (const c of [next, ...open]) c.close();
  }, T);
});

// ---------------------------------------------------------------------------------------------

describe("timeouts", () => {
  test("--tunnel-idle-timeout 300ms reaps an idle tunnel; a busy one outlives several idle periods", async () => {
    const p = await reverseTcp(echo.port, ["--tunnel-idle-timeout", "300ms"]);
    const idle = await NetClient.connect(p.ports.reverse!);
    await idle.roundTrip("then silence;");
    const busy = await NetClient.connect(p.ports.reverse!);
    await busy.roundTrip("first;");
    // A byte every ~30 ms; at least 40 of them (>= 1.2 s, 4 idle periods), at most 100.
    let pings = 0;
    while (pings < 100 && !(pings >= 40 && idle.ended)) {
      await busy.roundTrip(".");
      pings++;
      await Bun.sleep(30);
    }
    await idle.waitFor(() => idle.ended, 10_000, "the idle tunnel to be closed");
    // Closed, not reset: a FIN, as HAProxy and nginx end a connection on their timeouts.
    expect(idle.gotFin).toBe(true);
    expect(idle.hadError).toBeUndefined();
    const idleLine = await lineFor(p, idle);
    expect(idleLine.termination).toBe("idle-timeout");
    expect(idleLine.bytesUp).toBe("then silence;".length);
    expect(busy.ended).toBe(false);
    expect(hasLineFor(p, busy)).toBe(false);
    await busy.roundTrip("still open;");
    busy.halfClose();
    await busy.waitFor(() => busy.gotFin, 10_000, "FIN after the echo");
    expect((await lineFor(p, busy)).termination).toBe("client-fin");
  }, T);

  test("--tunnel-idle-timeout also applies to SOCKS tunnels", async () => {
    const p = await forwardSocks(["--tunnel-idle-timeout", "300ms"]);
    const c = await socksOpen(p.ports.forward!, socks5Connect("127.0.0.1", echo.port));
    expect(socks5Rep(c)).toBe(0x00);
    await c.roundTrip("x");
    await c.waitFor(() => c.ended, 10_000, "the idle SOCKS tunnel to be closed");
    expect((await lineFor(p, c)).termination).toBe("idle-timeout");
    expect(c.gotFin).toBe(true);
    expect(c.hadError).toBeUndefined();
  }, T);

  test("--half-closed-timeout 300ms: client half-closed, server never answers nor FINs -> reaped", async () => {
    let serverGotFin = false;
    let serverClosed = false;
    let serverSock: Bun.Socket<undefined> | undefined;
    const silent = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open: (s) => void (serverSock = s),
        data() {},
        end: () => void (serverGotFin = true), // and never answer, never FIN
        close: () => void (serverClosed = true),
      },
    });
    servers.push({ stop: () => silent.stop(true) });
    const p = await reverseTcp(silent.port, ["--half-closed-timeout", "300ms"]);
    const c = await NetClient.connect(p.ports.reverse!);
    await c.write("request");
    c.halfClose();
    await c.waitFor(() => c.ended, 10_000, "the half-closed tunnel to be closed");
    const line = await lineFor(p, c);
    expect(line.termination).toBe("half-closed-timeout");
    expect(c.gotFin).toBe(true); // closed, not reset
    expect(c.hadError).toBeUndefined();
    expect(line.bytesUp).toBe(7);
    expect(serverGotFin).toBe(true); // the client's FIN was passed on before the timeout
    // The upstream socket was closed too. (A Bun socket that has read EOF only notices the
    // proxy's close when it writes: probe with a write, bounded.)
    for (let i = 0; i < 100 && !serverClosed; i++) {
      serverSock?.write("late");
      await Bun.sleep(20);
    }
    expect(serverClosed).toBe(true);
  }, T);

  test("--half-closed-timeout does not cut a half-closed tunnel whose other direction is still streaming", async () => {
    // SPEC §4: "A half-closed side (FIN) is passed on as a half-close, and the other direction
    // keeps flowing." The server streams its answer for ~1.2 s (a line every 30 ms) after the
    // client's FIN: with a 300 ms half-closed timeout that is 4 periods, but never 300 ms of
    // silence. HAProxy's client-fin/server-fin (the precedent in lib/limits.ts) are inactivity
    // timeouts; cutting a tunnel that is moving bytes loses data.
    const LINES = 40;
    const streamer = Bun.listen<{ timer?: ReturnType<typeof setInterval> }>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open(s) {
          s.data = {};
        },
        data() {},
        end(s) {
          let sent = 0;
          s.data.timer = setInterval(() => {
            if (sent === LINES) {
              clearInterval(s.data.timer);
              s.shutdown();
              return;
            }
            sent++;
            s.write(`line ${String(sent).padStart(2, "0")}\n`);
          }, 30);
        },
        close(s) {
          clearInterval(s.data.timer);
        },
      },
    });
    servers.push({ stop: () => streamer.stop(true) });
    const p = await reverseTcp(streamer.port, ["--half-closed-timeout", "300ms"]);
    const c = await NetClient.connect(p.ports.reverse!);
    await c.write("send me the stream");
    c.halfClose();
    await c.waitFor(() => c.ended, 15_000, "the stream to end");
    const line = await lineFor(p, c);
    expect(c.receivedBytes, `termination ${line.termination}`).toBe(LINES * 8);
    expect(line.termination).toBe("client-fin");
  }, T);

  test("--response-timeout 300ms does not cut a request whose body is still being uploaded (its clock starts once the request is sent)", async () => {
    // A 40-part upload, one part every 30 ms (~1.2 s, 4 response timeouts): the origin answers
    // only once it has the whole body, as most servers do. The response-head timeout (nginx
    // proxy_read_timeout) is about the upstream being silent, not about the client's upload.
    const p = await forwardHttp(["--response-timeout", "300ms"]);
    const PARTS = 40;
    const part = "0123456789".repeat(10);
    const c = await NetClient.connect(p.ports.forward!);
    await c.write(`POST ${origin.url("/sha256")} HTTP/1.1\r\nHost: x\r\nContent-Length: ${PARTS * part.length}\r\n\r\n`);
    for (let i = 0; i < PARTS && !c.ended; i++) {
      await c.write(part);
      await Bun.sleep(30);
    }
    await c.waitFor(() => c.ended || (responses(c).length > 0 && responses(c)[0]!.complete), 10_000, "the response");
    const [r] = responses(c);
    const expected = new Bun.CryptoHasher("sha256").update(part.repeat(PARTS)).digest("hex");
    expect(r?.status, c.text().slice(0, 200)).toBe(200);
    expect(r!.body.toString()).toBe(expected);
    c.close();
  }, T);

  test("an HTTP response that stalls mid-body is not held open forever (every inactivity timeout at 300ms)", async () => {
    // The origin sends a head and 7 of 1000 body bytes, then nothing, and keeps the connection.
    // Whatever the limit is called, a response that moves no byte for many times every configured
    // timeout must end (nginx: proxy_read_timeout between two reads; Envoy: stream idle timeout);
    // otherwise each stalled upstream pins a client connection and an upstream socket forever.
    const stall = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        data(s, d) {
          if (Buffer.from(d).includes("\r\n\r\n")) s.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
        },
      },
    });
    servers.push({ stop: () => stall.stop(true) });
    const timeouts = ["--idle-timeout", "--tunnel-idle-timeout", "--response-timeout", "--header-timeout", "--half-closed-timeout"].flatMap((f) => [f, "300ms"]);
    const p = await forwardHttp(timeouts);
    const c = await NetClient.connect(p.ports.forward!);
    await c.write(get(`http://127.0.0.1:${stall.port}/`));
    await c.waitFor(() => c.text().endsWith("partial") || c.ended, 10_000, "the head and the first body bytes");
    await c.waitFor(() => c.ended, 10_000, "the stalled exchange to be ended (10 s = 33x every timeout)");
    expect(c.text().match(/HTTP\/1\.[01] \d{3}/g)).toHaveLength(1); // never a second status line
  }, T);

  test("an HTTP request whose body stalls is not held open forever either (every timeout at 300ms)", async () => {
    // The mirror case (slow POST): 3 of 100 body bytes, then silence. Any answer (408, 504) or a
    // plain close is fine; holding both sockets forever is not.
    const timeouts = ["--idle-timeout", "--tunnel-idle-timeout", "--response-timeout", "--header-timeout", "--half-closed-timeout"].flatMap((f) => [f, "300ms"]);
    const p = await forwardHttp(timeouts);
    const c = await NetClient.connect(p.ports.forward!);
    await c.write(`POST ${origin.url("/sha256")} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc`);
    await c.waitFor(() => c.ended, 10_000, "the stalled upload to be ended (10 s = 33x every timeout)");
    expect((c.text().match(/HTTP\/1\.[01] \d{3}/g) ?? []).length).toBeLessThanOrEqual(1);
    // The origin answers only a whole body, so it is the exchange's limit that ends this: a 408
    // that names the body, not the head (which was complete).
    expect(c.text()).toStartWith("HTTP/1.1 408 ");
    expect(c.text()).toContain("request body not received in time");
    const line = await lineFor(p, c);
    expect(line.termination).toBe("body-timeout");
  }, T);

  test("an upload the workload stops reading is the workload's stall: 504, not a 408 that invites the client to send it again", async () => {
    // The workload accepts, reads nothing and never answers; the client sends until TCP stops it.
    let accepted = 0;
    const deaf = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(s) {
          accepted++;
          s.pause();
        },
        data() {},
      },
    });
    servers.push({ stop: () => deaf.stop(true) });
    const p = await startProxy(["--proxy-type", "reverse", "--proxy-protocol", "http", "--proxy-host", "127.0.0.1", "--proxy-port", String(deaf.port), "--response-timeout", "300ms"]);
    const c = await NetClient.connect(p.ports.reverse!);
    const size = 64 * 1024 * 1024;
    void c.write(`POST /upload HTTP/1.1\r\nHost: w\r\nContent-Length: ${size}\r\n\r\n`);
    void c.write(new Uint8Array(size)); // far more than the socket buffers and the proxy's queue hold
    const line = await lineFor(p, c, 30_000);
    expect(accepted).toBe(1);
    expect(line.error).toBe("upstreamTimeout");
    expect(String(line.detail)).toContain("bytes waiting toward it");
    await c.waitFor(() => c.text().includes("\r\n\r\n"), 10_000, "the answer");
    expect(c.text()).toStartWith("HTTP/1.1 504 ");
    c.close();
  }, T);

  test("a client that stops reading mid-response is the client's stall (client-timeout), not the workload's", async () => {
    // 64 MB: more than the socket buffers and the proxy's queue (64 KiB) hold, so the proxy
    // pauses the origin for the client and the exchange stands still. The limit also covers the
    // wait for the head, which the test origin sends only after building and hashing the body
    // (126-445 ms on a loaded machine): 2 s, not 300 ms, or a busy CI runner gets a 504.
    const p = await forwardHttp(["--response-timeout", "2s"]);
    const c = await NetClient.connect(p.ports.forward!);
    c.pause();
    await c.write(`GET ${origin.url(`/bytes?n=${64 * 1024 * 1024}`)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const line = await lineFor(p, c, 20_000);
    expect(line.termination).toBe("client-timeout");
    expect(line.error).toBe("clientTimeout");
    expect(String(line.detail)).toContain("bytes waiting toward it");
    c.close();
  }, T);

  test("a client that stops reading a response the proxy has read whole is cut after --response-timeout, not held for ever", async () => {
    // 16 MB: more than the client's receive buffer and the proxy's send buffer take, all of it
    // read from the origin (--max-buffered-bytes 64MiB), so the exchange is over and the rest
    // waits in the proxy's queue behind the closing connection. Before, that queue waited for
    // ever: the connection kept its slot (and the tracker its record) until the client left.
    const p = await forwardHttp(["--response-timeout", "2s", "--max-buffered-bytes", "64MiB"]); // 2 s: as above
    const c = await NetClient.connect(p.ports.forward!);
    c.pause();
    await c.write(`GET ${origin.url(`/bytes?n=${16 * 1024 * 1024}`)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const line = await lineFor(p, c, 20_000);
    expect(line.termination).toBe("flush-timeout"); // the exchange had ended; its tail was cut
    expect(line.bytesDown as number).toBeLessThan(16 * 1024 * 1024); // what was dropped is not counted
    expect((await connectionsOf(p)).activeCount).toBe(0);
    c.close();
  }, T);

  test("--idle-timeout 300ms closes an idle HTTP keep-alive connection (and one that never sent a byte)", async () => {
    const p = await forwardHttp(["--idle-timeout", "300ms"]);
    const c = await NetClient.connect(p.ports.forward!);
    const r = await httpRequest(c, get(origin.url("/hello")), 1);
    expect(r.status).toBe(200);
    expect(r.header("connection")?.toLowerCase() ?? "keep-alive").not.toBe("close");
    await c.waitFor(() => c.ended, 10_000, "the idle keep-alive connection to be closed");
    expect(responses(c)).toHaveLength(1); // closed quietly: no error response after the 200
    const line = await lineFor(p, c);
    expect(line.termination).toBe("idle-timeout");
    expect(line.requests).toBe(1);

    const silent = await NetClient.connect(p.ports.forward!);
    await silent.waitFor(() => silent.ended, 10_000, "the silent connection to be closed");
    expect(silent.receivedBytes).toBe(0);
    expect((await lineFor(p, silent)).termination).toBe("idle-timeout");
  }, T);
});

// ---------------------------------------------------------------------------------------------

describe("--allow-clients (checked at accept)", () => {
  test("127.0.0.2/32: a client from 127.0.0.1 is refused, one from 127.0.0.2 is served", async () => {
    const p = await reverseTcp(echo.port, ["--allow-clients", "127.0.0.2/32"]);
    await expectRefusedSilently(p.ports.reverse!, "127.0.0.1", "hello?");
    const friend = await NetClient.connect(p.ports.reverse!, "127.0.0.1", "127.0.0.2");
    expect(friend.localAddress).toBe("127.0.0.2");
    await friend.roundTrip("hello from 127.0.0.2;");
    const view = await connectionsOf(p);
    expect(view.active.map((a) => a.client)).toEqual([`127.0.0.2:${friend.localPort}`]);
    const m = await metricsOf(p);
    expect(m.value("sidecar_connections_refused_total", { listener: "reverse" })).toBe(1);
    expect(m.value("sidecar_errors_total", { listener: "reverse", kind: "denied" })).toBe(1);
    expect(m.value("sidecar_connections_total", { listener: "reverse" })).toBe(1);
    friend.close();
  }, T);

  test("an IPv4-mapped entry (::ffff:127.0.0.2) admits the IPv4 client 127.0.0.2 only", async () => {
    const p = await forwardSocks(["--allow-clients", "::ffff:127.0.0.2"]);
    await expectRefusedSilently(p.ports.forward!, "127.0.0.1", socks5Connect("127.0.0.1", echo.port));
    const friend = await socksOpen(p.ports.forward!, socks5Connect("127.0.0.1", echo.port), "127.0.0.2");
    expect(socks5Rep(friend)).toBe(0x00);
    await friend.roundTrip("mapped ok;");
    friend.close();
  }, T);

  test("IPv6: listening on 127.0.0.1 and ::1 with --allow-clients ::1,127.0.0.2", async () => {
    // (A "::" listener is IPv6-only in this proxy, so IPv4 clients never arrive as ::ffff:a.b.c.d
    // here; mapped client addresses are covered by tests/policy.test.ts.)
    const p = await reverseTcp(echo.port, ["--in-bind", "127.0.0.1,::1", "--allow-clients", "::1,127.0.0.2"]);
    const port = p.ports.reverse!;
    const v6 = await NetClient.connect(port, "::1");
    await v6.roundTrip("hello over ::1;");
    const v4ok = await NetClient.connect(port, "127.0.0.1", "127.0.0.2");
    await v4ok.roundTrip("hello from 127.0.0.2;");
    await expectRefusedSilently(port, "127.0.0.1", "x");
    const clients = (await connectionsOf(p)).active.map((a) => a.client).sort();
    expect(clients).toEqual([`127.0.0.2:${v4ok.localPort}`, `[::1]:${v6.localPort}`].sort());
    for (const c of [v6, v4ok]) c.close();
  }, T);

  test("an IPv4-only allow list refuses an IPv6 client; forward http refuses before any byte", async () => {
    const p = await forwardHttp(["--out-bind", "127.0.0.1,::1", "--allow-clients", "127.0.0.0/8"]);
    await expectRefusedSilently(p.ports.forward!, "::1", get(origin.url("/hello")));
    const v4 = await NetClient.connect(p.ports.forward!, "127.0.0.1");
    expect((await httpRequest(v4, get(origin.url("/hello")), 1)).status).toBe(200);
    v4.close();
  }, T);
});

// ---------------------------------------------------------------------------------------------

describe("--deny-destinations (checked on the dialled address)", () => {
  test("forward http, 127.0.0.3/32: 403 (GET, CONNECT, mapped literal) and nothing reaches 127.0.0.3; 127.0.0.1 works", async () => {
    const p = await forwardHttp(["--deny-destinations", "127.0.0.3/32"]);
    const before = origin3.requests;
    const cases: Array<[string, string]> = [
      ["GET", get(origin3.url("/hello"))],
      ["CONNECT", `CONNECT 127.0.0.3:${echo3.port} HTTP/1.1\r\nHost: 127.0.0.3:${echo3.port}\r\n\r\n`],
      ["GET mapped", `GET http://[::ffff:127.0.0.3]:${origin3.port}/hello HTTP/1.1\r\nHost: [::ffff:127.0.0.3]:${origin3.port}\r\n\r\n`],
    ];
    for (const [what, request] of cases) {
      const c = await NetClient.connect(p.ports.forward!);
      const r = await httpRequest(c, request, 1);
      expect(r.status, what).toBe(403);
      expect(r.header("connection")?.toLowerCase(), what).toBe("close");
      await c.waitFor(() => c.ended, 10_000, `close after the 403 (${what})`);
      const line = await lineFor(p, c);
      expect(line.error, what).toBe("denied");
    }
    expect(origin3.requests).toBe(before);
    expect(echo3.accepted).toBe(0);
    const ok = await NetClient.connect(p.ports.forward!);
    const r = await httpRequest(ok, get(origin.url("/hello")), 1);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(HELLO);
    ok.close();
  }, T);

  test("forward socks, 127.0.0.3/32: REP 0x02 (IPv4 and mapped IPv6 requests); 127.0.0.1 works", async () => {
    const p = await forwardSocks(["--deny-destinations", "127.0.0.3/32"]);
    const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 3];
    for (const request of [socks5Connect("127.0.0.3", echo3.port), socks5Connect6(mapped, echo3.port)]) {
      const c = await socksOpen(p.ports.forward!, request);
      expect(socks5Rep(c)).toBe(0x02);
      await c.waitFor(() => c.ended, 10_000, "close after REP 0x02");
    }
    expect(echo3.accepted).toBe(0);
    const ok = await socksOpen(p.ports.forward!, socks5Connect("127.0.0.1", echo.port));
    expect(socks5Rep(ok)).toBe(0x00);
    await ok.roundTrip("allowed;");
    ok.close();
  }, T);

  test("DNS rebinding defence: the name localhost is refused when its address is denied (http 403, socks 0x02)", async () => {
    const deny = ["--deny-destinations", "127.0.0.1/32,::1/128"];
    const http = await forwardHttp(deny);
    const before = origin.requests;
    const byName = `http://localhost:${origin.port}/hello`;
    const c = await NetClient.connect(http.ports.forward!);
    const r = await httpRequest(c, get(byName), 1);
    expect(r.status).toBe(403);
    const connect = await NetClient.connect(http.ports.forward!);
    const rc = await httpRequest(connect, `CONNECT localhost:${echo.port} HTTP/1.1\r\nHost: localhost:${echo.port}\r\n\r\n`, 1);
    expect(rc.status).toBe(403);
    expect(origin.requests).toBe(before);

    const socks = await forwardSocks(deny);
    const echoBefore = echo.accepted;
    const s = await socksOpen(socks.ports.forward!, socks5Connect("localhost", echo.port));
    expect(socks5Rep(s)).toBe(0x02);
    expect(echo.accepted).toBe(echoBefore);
    const line = await lineFor(socks, s);
    expect(line.error).toBe("denied");
    expect(String(line.detail)).toContain("127.0.0.1");
  }, T);

  test("the unspecified address is judged as the loopback one Linux connects it to: 0.0.0.0, ::, ::ffff:0.0.0.0 and SOCKS4 DSTIP 0 are denied with loopback (they reached it before)", async () => {
    const deny = ["--deny-destinations", "127.0.0.0/8,::1/128"];
    const socks = await forwardSocks(deny);
    const echoBefore = echo.accepted;
    const unspecified6 = Array(16).fill(0);
    const mappedZero = [...Array(10).fill(0), 0xff, 0xff, 0, 0, 0, 0];
    for (const [what, request] of [
      ["0.0.0.0", socks5Connect("0.0.0.0", echo.port)],
      ["0.0.0.0 as a name", Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 7]), Buffer.from("0.0.0.0"), Buffer.from([echo.port >> 8, echo.port & 0xff])])],
      ["::", socks5Connect6(unspecified6, echo.port)],
      ["::ffff:0.0.0.0", socks5Connect6(mappedZero, echo.port)],
    ] as const) {
      const s = await socksOpen(socks.ports.forward!, request);
      expect(socks5Rep(s), what).toBe(0x02);
      const line = await lineFor(socks, s);
      expect(line.error, what).toBe("denied");
    }
    const four = await NetClient.connect(socks.ports.forward!);
    await four.write(Buffer.from([4, 1, echo.port >> 8, echo.port & 0xff, 0, 0, 0, 0, 0]));
    await four.waitFor(() => four.receivedBytes >= 8 || four.ended, 10_000, "SOCKS4 reply");
    expect(Buffer.concat(four.chunks)[1]).toBe(0x5b);
    expect(echo.accepted).toBe(echoBefore);

    const http = await forwardHttp(deny);
    const before = origin.requests;
    const c = await NetClient.connect(http.ports.forward!);
    expect((await httpRequest(c, get(`http://0.0.0.0:${origin.port}/hello`), 1)).status).toBe(403);
    expect(origin.requests).toBe(before);

    // Without a deny list 0.0.0.0 still reaches a server on 127.0.0.1, as a direct connect does.
    const open = await forwardSocks();
    const ok = await socksOpen(open.ports.forward!, socks5Connect("0.0.0.0", echo.port));
    expect(socks5Rep(ok)).toBe(0x00);
    await ok.roundTrip("0.0.0.0 is 127.0.0.1;");
    ok.close();
  }, T);

  test("the private preset refuses loopback by address and by name on the forward side; the reverse side still reaches its workload", async () => {
    const p = await startProxy([
      "--proxy-type", "dual", "--proxy-protocol", "tcp:http",
      "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port),
      "--out-bind", "127.0.0.1,::1",
      "--deny-destinations", "private",
    ]);
    const before = origin.requests;
    for (const url of [origin.url("/hello"), `http://localhost:${origin.port}/hello`, `http://[::1]:${origin.port}/hello`]) {
      const c = await NetClient.connect(p.ports.forward!);
      const r = await httpRequest(c, get(url), 1);
      expect(r.status, url).toBe(403);
    }
    expect(origin.requests).toBe(before);
    // The deny list is for forward destinations only: the workload on 127.0.0.1 is reachable.
    const rev = await NetClient.connect(p.ports.reverse!);
    await rev.roundTrip("to the workload;");
    rev.close();
  }, T);
});
