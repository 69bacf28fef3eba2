/**
 * HTTP forward proxy end to end (SPEC §3, §4, §5), through a real proxy process, with a raw
 * client that writes exact bytes: absolute-form to origin-form, hop-by-hop removal and Via,
 * keep-alive across origins, pipelining, Expect: 100-continue, CONNECT tunnels, Basic proxy
 * auth, every error answer (400/414/431/407/502/504) with Connection: close, smuggling attempts
 * that must reach no origin, an upstream dying mid-response, half-close and the header deadline.
 *
 * Origins are on loopback with OS ports (tests/helpers/origins.ts): Bun.serve origins with real
 * routes, and scripted raw origins that record every byte they receive.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RawClient, type TestServer, closedPort, echoServer, patternChunk, sha256 } from "./helpers/net.ts";
import {
  type Origin,
  type RawOrigin,
  type WireResponse,
  answerEachHead,
  awaitResponses,
  headCount,
  httpOrigin,
  rawExchange,
  rawOrigin,
  responsesOf,
} from "./helpers/origins.ts";
import { type LogLine, type RunningProxy, killAll, startProxy } from "./helpers/proxy.ts";

const FORWARD = ["--proxy-type", "forward", "--proxy-protocol", "http"];
const HELLO = "hello from origin";
/** RFC 6761: `.invalid` never resolves, anywhere. */
const NO_SUCH_HOST = "nonexistent.invalid";
const KiB = 1024;
const MiB = 1024 * 1024;

let fwd: RunningProxy; // default settings
let http4: Origin; // 127.0.0.1
let http4b: Origin; // a second origin on 127.0.0.1 (different port)
let http6: Origin; // ::1
let echo: TestServer;
const extra: Array<{ stop(): void }> = [];

beforeAll(async () => {
  http4 = httpOrigin("127.0.0.1");
  http4b = httpOrigin("127.0.0.1");
  http6 = httpOrigin("::1");
  echo = echoServer();
  fwd = await startProxy(FORWARD);
}, 60_000);

afterAll(() => {
  killAll();
  for (const o of [http4, http4b, http6, echo, ...extra]) o?.stop();
});

// ---------------------------------------------------------------------------------------------
// helpers

/** host:port of an origin as it appears in a URL authority (IPv6 in brackets). */
function authority(o: { hostname: string; port: number }): string {
  return o.hostname.includes(":") ? `[${o.hostname}]:${o.port}` : `${o.hostname}:${o.port}`;
}

/** An absolute-form GET for a proxy. */
function get(url: string, fields = ""): string {
  return `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n${fields}\r\n`;
}

function sha256Hex(b: Uint8Array): string {
  const h = sha256();
  h.update(b);
  return h.hex();
}

/** SPEC §4: status, Connection: close, a short plain-text body; the proxy then closes. */
async function expectErrorAnswer(client: RawClient, r: WireResponse | undefined, status: number): Promise<string> {
  expect(r, `expected a ${status} answer, got ${JSON.stringify(client.text().slice(0, 300))}`).toBeDefined();
  expect(r!.status).toBe(status);
  expect(r!.header("connection")?.toLowerCase()).toBe("close");
  expect(r!.header("content-type")?.toLowerCase() ?? "").toStartWith("text/plain");
  expect(r!.complete).toBe(true);
  const body = r!.body.toString("utf8");
  expect(body.trim().length).toBeGreaterThan(0);
  expect(body.length).toBeLessThan(512);
  await client.waitFor(() => client.closed || client.gotFin, 10_000, "the proxy to close after an error answer");
  return body;
}

/** Sends raw bytes to the forward port and expects an error answer with `status`. */
async function expectRejected(proxy: RunningProxy, request: string, status: number, methods: string[] = []): Promise<string> {
  const x = await rawExchange(proxy.ports.forward!, request, { methods });
  expect(x.finals.length).toBe(1); // one answer, never a second status line
  return expectErrorAnswer(x.client, x.finals[0], status);
}

/** Parses a request the origin received as raw text: request line and lower-cased fields. */
function parseReceivedRequest(text: string): { line: string; fields: Array<[string, string]>; get(n: string): string[] } {
  const head = text.slice(0, text.indexOf("\r\n\r\n"));
  const [line, ...rest] = head.split("\r\n");
  const fields = rest.map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
  });
  return { line: line!, fields, get: (n) => fields.filter(([k]) => k === n).map(([, v]) => v) };
}

function connectionLog(p: RunningProxy, since: number, pred: (l: LogLine) => boolean = () => true): Promise<LogLine> {
  return p.waitForLog((l) => l.msg === "connection" && p.logs.indexOf(l) >= since && pred(l), 10_000, "connection log line");
}

// ---------------------------------------------------------------------------------------------

describe("forward http: what reaches the origin", () => {
  test("absolute-form goes out in origin-form, hop-by-hop fields removed, Via added, end-to-end kept", async () => {
    const origin = rawOrigin(
      answerEachHead(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Resp-Hop\r\nX-Resp-Hop: secret\r\nX-End: yes\r\n\r\nok",
      ),
    );
    extra.push(origin);
    const url = `${origin.url("/path/x")}?q=1&r=%20`;
    const since = fwd.logs.length;
    const x = await rawExchange(
      fwd.ports.forward!,
      get(
        url,
        [
          "Proxy-Connection: keep-alive",
          "Proxy-Authorization: Basic Zm9vOmJhcg==",
          "Keep-Alive: timeout=30",
          "TE: trailers",
          "Connection: keep-alive, X-Hop-Token",
          "X-Hop-Token: drop-me",
          "X-End-To-End: keep-me",
          "User-Agent: raw-test",
          "",
        ].join("\r\n"),
      ),
    );
    // The client's answer: the origin's body, minus the origin's hop-by-hop fields.
    expect(x.finals.length).toBe(1);
    const r = x.finals[0]!;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe("ok");
    expect(r.header("x-end")).toBe("yes");
    expect(r.header("x-resp-hop")).toBeUndefined();
    expect(r.header("keep-alive")).toBeUndefined();

    const req = parseReceivedRequest(origin.received());
    expect(req.line).toBe("GET /path/x?q=1&r=%20 HTTP/1.1");
    expect(req.get("host")).toEqual([authority(origin)]);
    expect(req.get("x-end-to-end")).toEqual(["keep-me"]);
    expect(req.get("user-agent")).toEqual(["raw-test"]);
    for (const hop of ["proxy-connection", "proxy-authorization", "keep-alive", "te", "x-hop-token"]) {
      expect(req.get(hop), `${hop} must not reach the origin`).toEqual([]);
    }
    for (const c of req.get("connection")) expect(c.toLowerCase()).not.toContain("x-hop-token");
    expect(req.get("via").join(", ")).toContain("1.1 sidecar-proxy");
    x.client.close();
    const line = await connectionLog(fwd, since, (l) => l.listener === "forward");
    expect(line.protocol).toBe("http");
  });

  test("Via is appended to the client's own Via (Bun origin sees both)", async () => {
    const x = await rawExchange(fwd.ports.forward!, get(http4.url("/echo-headers"), "Via: 1.0 fred\r\n"));
    const seen = JSON.parse(x.finals[0]!.body.toString()) as Record<string, string>;
    expect(seen.via).toBe("1.0 fred, 1.1 sidecar-proxy");
    expect(seen.host).toBe(authority(http4));
    x.client.close();
  });

  test("keep-alive on the client connection across three different origins (one IPv6)", async () => {
    const c = await RawClient.connect(fwd.ports.forward!);
    const plan: Array<{ req: string; check: (r: WireResponse) => void }> = [
      { req: get(http4.url("/hello")), check: (r) => expect(r.body.toString()).toBe(HELLO) },
      { req: get(http6.url("/ip")), check: (r) => expect(r.body.toString()).toBe("::1") },
      {
        req: get(http4b.url("/echo-headers"), "X-Step: 3\r\n"),
        check: (r) => {
          const seen = JSON.parse(r.body.toString()) as Record<string, string>;
          expect(seen.host).toBe(authority(http4b));
          expect(seen["x-step"]).toBe("3");
        },
      },
      {
        req: get(http4.url("/bytes?n=300000&seed=4")),
        check: (r) => {
          expect(r.body.length).toBe(300_000);
          expect(sha256Hex(r.body)).toBe(r.header("x-sha256")!);
        },
      },
    ];
    const before = { a: http4.requests, b: http4b.requests, six: http6.requests };
    for (let i = 0; i < plan.length; i++) {
      await c.write(plan[i]!.req);
      const x = await awaitResponses(c, i + 1);
      expect(x.ended, `the proxy closed the connection after request ${i + 1}`).toBe(false);
      const r = x.finals[i]!;
      expect(r.status).toBe(200);
      expect(r.complete).toBe(true);
      plan[i]!.check(r);
    }
    expect(http4.requests - before.a).toBe(2);
    expect(http4b.requests - before.b).toBe(1);
    expect(http6.requests - before.six).toBe(1);
    c.close();
  });

  test("pipelined requests to two origins are answered in order", async () => {
    const reqs = [
      get(http4.url("/bytes?n=200000&seed=21")),
      get(http4b.url("/hello")),
      get(http4.url("/echo-headers"), "X-Order: third\r\n"),
      get(http4b.url("/bytes?n=5&seed=22")),
    ];
    const x = await rawExchange(fwd.ports.forward!, reqs.join(""), { count: 4 });
    expect(x.finals.length).toBe(4);
    expect(x.finals.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(x.finals[0]!.body.length).toBe(200_000);
    expect(sha256Hex(x.finals[0]!.body)).toBe(x.finals[0]!.header("x-sha256")!);
    expect(x.finals[1]!.body.toString()).toBe(HELLO);
    expect((JSON.parse(x.finals[2]!.body.toString()) as Record<string, string>)["x-order"]).toBe("third");
    expect(sha256Hex(x.finals[3]!.body)).toBe(x.finals[3]!.header("x-sha256")!);
    expect(x.finals[3]!.body.length).toBe(5);
    x.client.close();
  });

  test("pipelined requests followed by the client's FIN: every one is answered, then the connection closes", async () => {
    const c = await RawClient.connect(fwd.ports.forward!);
    await c.write([get(http4.url("/hello")), get(http4b.url("/bytes?n=70000&seed=23")), get(http4.url("/echo-headers"), "X-Order: third\r\n")].join(""));
    c.halfClose(); // SPEC §4: a half-closed client still gets the responses to what it sent
    await c.waitFor(() => c.gotFin || c.closed, 10_000, "the proxy's FIN after the last response");
    const { finals } = responsesOf(c);
    expect(finals.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(finals.every((r) => r.complete)).toBe(true);
    expect(finals[0]!.body.toString()).toBe(HELLO);
    expect(sha256Hex(finals[1]!.body)).toBe(finals[1]!.header("x-sha256")!);
    expect((JSON.parse(finals[2]!.body.toString()) as Record<string, string>)["x-order"]).toBe("third");
    c.close();
  });

  test("a GET, then a pipelined CONNECT with tunnel bytes, then the client's FIN: the GET is answered, the tunnel echoes, the FIN goes through", async () => {
    const c = await RawClient.connect(fwd.ports.forward!);
    const target = authority({ hostname: "127.0.0.1", port: echo.port });
    await c.write(`${get(http4.url("/hello"))}CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\ntunnel bytes`);
    c.halfClose();
    await c.waitFor(() => c.gotFin || c.closed, 10_000, "the echo server's FIN through the tunnel");
    const x = responsesOf(c, ["GET", "CONNECT"]);
    expect(x.finals.map((r) => r.status)).toEqual([200, 200]);
    expect(x.finals[0]!.body.toString()).toBe(HELLO);
    expect(c.text().endsWith("\r\n\r\ntunnel bytes")).toBe(true);
    c.close();
  });

  test("HEAD has no body: a GET after it on the same connection is answered correctly", async () => {
    const x = await rawExchange(fwd.ports.forward!, `HEAD ${http4.url("/hello")} HTTP/1.1\r\nHost: ${authority(http4)}\r\n\r\n${get(http4.url("/hello"))}`, {
      count: 2,
      methods: ["HEAD", "GET"],
    });
    expect(x.finals.map((r) => r.status)).toEqual([200, 200]);
    expect(x.finals[0]!.body.length).toBe(0);
    expect(x.finals[0]!.header("content-type")).toContain("text/plain");
    expect(x.finals[1]!.body.toString()).toBe(HELLO);
    expect(x.rest.length).toBe(0);
    x.client.close();
  });

  test("Expect: 100-continue: the 100 comes back before the body is sent, then the body arrives intact", async () => {
    const body = patternChunk(77, MiB + 3);
    const c = await RawClient.connect(fwd.ports.forward!);
    await c.write(
      `POST ${http4.url("/sha256")} HTTP/1.1\r\nHost: ${authority(http4)}\r\nContent-Length: ${body.byteLength}\r\nExpect: 100-continue\r\n\r\n`,
    );
    await c.waitFor(() => responsesOf(c).responses.some((r) => r.status === 100) || c.closed || c.gotFin, 10_000, "100 Continue");
    expect(responsesOf(c).responses.map((r) => r.status)).toEqual([100]);
    await c.write(body);
    const x = await awaitResponses(c, 1);
    expect(x.finals[0]!.status).toBe(200);
    expect(x.finals[0]!.body.toString()).toBe(sha256Hex(body));
    c.close();
  });

  test("a chunked request body (with a chunk extension and a trailer) is relayed intact", async () => {
    const parts = [patternChunk(1, 1000), patternChunk(2, 70_000), patternChunk(3, 1)];
    const h = sha256();
    const wire: Uint8Array[] = [Buffer.from(`POST ${http4.url("/sha256")} HTTP/1.1\r\nHost: ${authority(http4)}\r\nTransfer-Encoding: chunked\r\n\r\n`)];
    for (const [i, p] of parts.entries()) {
      h.update(p);
      wire.push(Buffer.from(`${p.byteLength.toString(16)}${i === 0 ? ";ext=1" : ""}\r\n`), p, Buffer.from("\r\n"));
    }
    wire.push(Buffer.from("0\r\nX-Trailer: t\r\n\r\n"));
    const x = await rawExchange(fwd.ports.forward!, Buffer.concat(wire));
    expect(x.finals[0]!.status).toBe(200);
    expect(x.finals[0]!.body.toString()).toBe(h.hex());
    expect(x.finals[0]!.header("x-body-bytes")).toBe("71001");
    x.client.close();
  });

  test("absolute-form with a different Host: the origin gets the URI's authority (RFC 9112 §3.2.2)", async () => {
    const x = await rawExchange(fwd.ports.forward!, `GET ${http4.url("/echo-headers")} HTTP/1.1\r\nHost: somewhere-else.example\r\n\r\n`);
    expect(x.finals[0]!.status).toBe(200);
    expect((JSON.parse(x.finals[0]!.body.toString()) as Record<string, string>).host).toBe(authority(http4));
    x.client.close();
  });

  test("a 4 MiB body written right behind its head (no Expect) arrives intact", async () => {
    // What most clients do (Python, Java HttpURLConnection, undici, Bun fetch): the body bytes
    // reach the proxy while it is still connecting to the origin.
    const body = patternChunk(78, 4 * MiB);
    const head = `POST ${http4.url("/sha256")} HTTP/1.1\r\nHost: ${authority(http4)}\r\nContent-Length: ${body.byteLength}\r\n\r\n`;
    const c = await RawClient.connect(fwd.ports.forward!);
    void c.write(Buffer.concat([Buffer.from(head), body]));
    const x = await awaitResponses(c, 1, [], 20_000);
    expect(x.finals[0]?.status).toBe(200);
    expect(x.finals[0]!.body.toString()).toBe(sha256Hex(body));
    c.close();
  });

  test("pipelined: a GET, then a POST with a 1 MiB body, in one write", async () => {
    const body = patternChunk(79, MiB);
    const post = `POST ${http4b.url("/sha256")} HTTP/1.1\r\nHost: ${authority(http4b)}\r\nContent-Length: ${body.byteLength}\r\n\r\n`;
    const c = await RawClient.connect(fwd.ports.forward!);
    void c.write(Buffer.concat([Buffer.from(get(http4.url("/hello")) + post), body]));
    const x = await awaitResponses(c, 2, [], 20_000);
    expect(x.finals.map((r) => r.status)).toEqual([200, 200]);
    expect(x.finals[0]!.body.toString()).toBe(HELLO);
    expect(x.finals[1]!.body.toString()).toBe(sha256Hex(body));
    c.close();
  });

  test("the forward listener also serves on ::1", async () => {
    const ready = fwd.logs.find((l) => l.msg === "ready")!;
    const v6 = (ready.listeners as Record<string, Array<{ address: string; port: number }>>).forward!.find((l) => l.address === "::1");
    expect(v6, "a forward listener on ::1").toBeDefined();
    const x = await rawExchange(v6!.port, get(http4.url("/hello")), { host: "::1" });
    expect(x.finals[0]!.status).toBe(200);
    expect(x.finals[0]!.body.toString()).toBe(HELLO);
    x.client.close();
  });
});

describe("forward http: CONNECT", () => {
  test("200, then a byte-exact tunnel: early bytes kept, 2 MiB echoed, half-close passed on", async () => {
    const c = await RawClient.connect(fwd.ports.forward!);
    // The first tunnel bytes travel in the same packet as the CONNECT head.
    await c.write(`CONNECT ${authority({ hostname: "127.0.0.1", port: echo.port })} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\nearly`);
    await c.waitFor(() => c.text().includes("\r\n\r\n") || c.closed, 10_000, "CONNECT answer");
    const head = responsesOf(c, ["CONNECT"]);
    expect(head.finals[0]!.status).toBe(200);
    const headLen = c.text().indexOf("\r\n\r\n") + 4;
    const data = patternChunk(5, 2 * MiB);
    await c.write(data);
    c.halfClose();
    await c.waitFor(() => c.gotFin, 30_000, "echo and FIN through the tunnel");
    const tunnel = c.bytes().subarray(headLen);
    expect(tunnel.byteLength).toBe(5 + data.byteLength);
    expect(Buffer.from(tunnel.subarray(0, 5)).toString()).toBe("early");
    expect(sha256Hex(tunnel.subarray(5))).toBe(sha256Hex(data));
    c.close();
  });

  // A whole CONNECT head in the first segment goes straight to the tunnel (lib/listeners/http-front.ts);
  // anything else is parsed by the HTTP session. Both must behave alike.
  test("a CONNECT head that arrives in two writes becomes the same tunnel, early bytes first", async () => {
    const c = await RawClient.connect(fwd.ports.forward!);
    const target = authority({ hostname: "127.0.0.1", port: echo.port });
    await c.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`);
    await Bun.sleep(20); // makes a second segment likely; the test passes either way
    await c.write("\r\nearly");
    await c.waitFor(() => c.text().endsWith("early") || c.closed, 10_000, "the early bytes echoed");
    expect(responsesOf(c, ["CONNECT"]).finals[0]!.status).toBe(200);
    expect(c.text().endsWith("\r\n\r\nearly")).toBe(true);
    c.close();
  });

  test("a bad CONNECT head gets the same answer whole in one write or byte by byte", async () => {
    const target = authority({ hostname: "127.0.0.1", port: echo.port });
    const heads: Array<[string, number]> = [
      [`CONNECT 127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 400], // no port
      [`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nHost: ${target}\r\n\r\n`, 400], // two Hosts
      [`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nBad Name: x\r\n\r\n`, 400],
      [`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${"X-Long: " + "a".repeat(40 * KiB)}\r\n\r\n`, 431],
    ];
    for (const [head, status] of heads) {
      const whole = await expectRejected(fwd, head, status, ["CONNECT"]);
      const c = await RawClient.connect(fwd.ports.forward!);
      for (let i = 0; i < head.length && !c.closed && !c.gotFin; i += 512) await c.write(head.slice(i, i + 512));
      const x = await awaitResponses(c, 1, ["CONNECT"], 10_000);
      expect(await expectErrorAnswer(c, x.finals[0], status)).toBe(whole);
    }
  });

  test("a client that half-closes before its first byte is closed, and logged as client-fin with no request", async () => {
    const since = fwd.logs.length;
    const c = await RawClient.connect(fwd.ports.forward!);
    const port = c.localPort; // read while the socket is open
    c.halfClose();
    await c.waitFor(() => c.gotFin || c.closed, 10_000, "the proxy to close");
    expect(c.receivedBytes).toBe(0);
    const line = await connectionLog(fwd, since, (l) => l.client === `127.0.0.1:${port}`);
    expect(line.termination).toBe("client-fin");
    expect(line.requests ?? 0).toBe(0); // the line leaves out a zero count
    c.close();
  });

  test("a client that half-closes inside a request head is closed unanswered, logged client-aborted (it was client-fin, as if it had finished); empty lines alone are a client-fin", async () => {
    for (const [sent, termination] of [["GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127", "client-aborted"], ["\r\n", "client-fin"]] as const) {
      const since = fwd.logs.length;
      const c = await RawClient.connect(fwd.ports.forward!);
      const port = c.localPort;
      await c.write(sent);
      c.halfClose();
      await c.waitFor(() => c.gotFin || c.closed, 10_000, "the proxy to close");
      expect(c.receivedBytes).toBe(0);
      const line = await connectionLog(fwd, since, (l) => l.client === `127.0.0.1:${port}`);
      expect([JSON.stringify(sent), line.termination, line.error, line.level]).toEqual([JSON.stringify(sent), termination, undefined, "info"]);
      c.close();
    }
  });

  test("CONNECT to a refused port: 502 with Connection: close", async () => {
    const port = closedPort();
    await expectRejected(fwd, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, 502, ["CONNECT"]);
  });

  test("CONNECT to a refused port: the log line's bytes down are the 502 the client got", async () => {
    const port = closedPort();
    const since = fwd.logs.length;
    const c = await RawClient.connect(fwd.ports.forward!);
    await c.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await c.waitFor(() => c.gotFin || c.closed, 10_000, "the 502 and the close");
    expect(c.text().startsWith("HTTP/1.1 502 ")).toBe(true);
    const line = await connectionLog(fwd, since, (l) => l.target === `127.0.0.1:${port}`);
    expect(line.bytesDown).toBe(c.receivedBytes);
    c.close();
  });

  test("HEAD to a refused port: 502 with the fields a GET gets and no content (RFC 9110 §9.3.2)", async () => {
    const port = closedPort();
    const answer = async (method: string) => {
      const c = await RawClient.connect(fwd.ports.forward!);
      await c.write(`${method} http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      await c.waitFor(() => c.gotFin || c.closed, 10_000, `the 502 to ${method} and the close`);
      c.close();
      return c.text();
    };
    const get = await answer("GET");
    const head = await answer("HEAD");
    expect(get).toStartWith("HTTP/1.1 502 ");
    const [getHead, getBody] = get.split("\r\n\r\n");
    expect(getBody!.length).toBeGreaterThan(0);
    expect(head).toBe(`${getHead}\r\n\r\n`); // it had the body too
    expect(head).toContain(`\r\nContent-Length: ${getBody!.length}\r\n`);
  });

  test(`CONNECT to a name that does not resolve (${NO_SUCH_HOST}): 502`, async () => {
    await expectRejected(fwd, `CONNECT ${NO_SUCH_HOST}:443 HTTP/1.1\r\nHost: ${NO_SUCH_HOST}:443\r\n\r\n`, 502, ["CONNECT"]);
  });
});

describe("forward http: Upgrade", () => {
  test("an Upgrade request: the 101 comes back and the connection becomes a byte tunnel both ways", async () => {
    // A raw origin that switches protocols, then echoes every byte after the request head.
    let echoed = 0;
    const origin = rawOrigin((conn) => {
      const end = conn.received.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (conn.answered === 0) {
        conn.answered = 1;
        conn.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-echo\r\n\r\n");
        echoed = end + 4;
      }
      if (conn.received.length > echoed) {
        conn.write(conn.received.slice(echoed));
        echoed = conn.received.length;
      }
    });
    extra.push(origin);
    const c = await RawClient.connect(fwd.ports.forward!);
    await c.write(get(origin.url("/up"), "Connection: Upgrade\r\nUpgrade: x-echo\r\n"));
    await c.waitFor(() => c.text().includes("\r\n\r\n") || c.closed, 10_000, "the 101");
    const x = responsesOf(c);
    expect(x.finals[0]!.status).toBe(101);
    expect(x.finals[0]!.header("upgrade")).toBe("x-echo");
    const req = parseReceivedRequest(origin.received());
    expect(req.line).toBe("GET /up HTTP/1.1");
    expect(req.get("upgrade")).toEqual(["x-echo"]);
    expect(req.get("connection").join(",").toLowerCase()).toContain("upgrade");
    const headLen = c.text().indexOf("\r\n\r\n") + 4;
    const data = patternChunk(12, 300_000);
    await c.write(data);
    await c.waitFor(() => c.receivedBytes >= headLen + data.byteLength || c.closed, 10_000, "the echo through the upgraded connection");
    expect(sha256Hex(c.bytes().subarray(headLen))).toBe(sha256Hex(data));
    c.close();
  });
});

describe("forward http: Upgrade after the client's FIN", () => {
  test("a FIN sent with the Upgrade request, before the 101, reaches the upstream after the early bytes", async () => {
    // Switches protocols, echoes, and closes once the proxy passes the client's FIN on (rawOrigin).
    const origin = rawOrigin((conn) => {
      const end = conn.received.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (conn.answered === 0) {
        conn.answered = end + 4;
        conn.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-echo\r\n\r\n");
      }
      if (conn.received.length > conn.answered) {
        conn.write(conn.received.slice(conn.answered));
        conn.answered = conn.received.length;
      }
    });
    extra.push(origin);
    const c = await RawClient.connect(fwd.ports.forward!);
    await c.write(`${get(origin.url("/up"), "Connection: Upgrade\r\nUpgrade: x-echo\r\n")}early frame`);
    c.halfClose();
    await c.waitFor(() => c.gotFin || c.closed, 10_000, "the upstream's FIN, after it got ours");
    expect(responsesOf(c).finals[0]!.status).toBe(101);
    expect(c.text().endsWith("\r\n\r\nearly frame")).toBe(true);
    c.close();
  });
});

describe("forward http: Basic proxy authentication", () => {
  let auth: RunningProxy;
  let origin: Origin;
  const good = `Basic ${Buffer.from("user:secret").toString("base64")}`;
  const bad = `Basic ${Buffer.from("user:wrong").toString("base64")}`;

  beforeAll(async () => {
    origin = httpOrigin();
    extra.push(origin);
    auth = await startProxy([...FORWARD, "--auth", "user:secret"]);
  });

  test("no Proxy-Authorization: 407 with Proxy-Authenticate: Basic, and nothing reaches the origin", async () => {
    const before = origin.requests;
    const x = await rawExchange(auth.ports.forward!, get(origin.url("/hello")));
    await expectErrorAnswer(x.client, x.finals[0], 407);
    expect(x.finals[0]!.header("proxy-authenticate") ?? "").toMatch(/^Basic\b/i);
    expect(origin.requests).toBe(before);
  });

  test("wrong password: 407, nothing reaches the origin", async () => {
    const before = origin.requests;
    const x = await rawExchange(auth.ports.forward!, get(origin.url("/hello"), `Proxy-Authorization: ${bad}\r\n`));
    await expectErrorAnswer(x.client, x.finals[0], 407);
    expect(x.finals[0]!.header("proxy-authenticate") ?? "").toMatch(/^Basic\b/i);
    expect(origin.requests).toBe(before);
  });

  test("right credentials: served, and Proxy-Authorization is not forwarded", async () => {
    const x = await rawExchange(auth.ports.forward!, get(origin.url("/echo-headers"), `Proxy-Authorization: ${good}\r\n`));
    expect(x.finals[0]!.status).toBe(200);
    const seen = JSON.parse(x.finals[0]!.body.toString()) as Record<string, string>;
    expect(seen["proxy-authorization"]).toBeUndefined();
    expect(seen.host).toBe(authority(origin));
    expect(seen.via).toContain("1.1 sidecar-proxy");
    x.client.close();
  });

  test("CONNECT: 407 without credentials, a tunnel with them", async () => {
    const no = await rawExchange(auth.ports.forward!, `CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`, {
      methods: ["CONNECT"],
    });
    await expectErrorAnswer(no.client, no.finals[0], 407);
    const c = await RawClient.connect(auth.ports.forward!);
    await c.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\nProxy-Authorization: ${good}\r\n\r\n`);
    await c.waitFor(() => c.text().includes("\r\n\r\n") || c.closed, 10_000, "CONNECT answer");
    expect(responsesOf(c, ["CONNECT"]).finals[0]!.status).toBe(200);
    await c.write("through the tunnel");
    await c.waitFor(() => c.text().endsWith("through the tunnel") || c.closed, 10_000, "echo");
    expect(c.text().endsWith("\r\n\r\nthrough the tunnel")).toBe(true);
    c.close();
  });
});

describe("forward http: malformed requests and smuggling (SPEC §4: 400, nothing reaches the origin)", () => {
  const smuggled = (o: RawOrigin) => `GET /smuggled HTTP/1.1\r\nHost: ${authority(o)}\r\n\r\n`;

  /**
   * A fresh origin per case. After the rejection, a valid request to the same origin on a new
   * connection is the barrier: once it is answered, the origin must hold that request and
   * nothing else (no late, half-forwarded leftovers of the rejected one).
   */
  async function afterBarrier(origin: RawOrigin): Promise<string> {
    const ok = await rawExchange(fwd.ports.forward!, get(origin.url("/after-barrier")));
    expect(ok.finals[0]!.status).toBe(200);
    expect(ok.finals[0]!.body.toString()).toBe("ok");
    ok.client.close();
    return origin.received();
  }

  function freshOrigin(): RawOrigin {
    const o = rawOrigin(answerEachHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    extra.push(o);
    return o;
  }

  /** Sends, expects `status`, and checks the origin received nothing of it at all. */
  async function rejectedBeforeOrigin(request: (o: RawOrigin) => string, status = 400): Promise<string> {
    const origin = freshOrigin();
    const body = await expectRejected(fwd, request(origin), status);
    const received = await afterBarrier(origin);
    expect(received).toStartWith("GET /after-barrier HTTP/1.1\r\n");
    expect(headCount(received)).toBe(1);
    expect(origin.connections).toBe(1);
    return body;
  }

  test("origin-form on the forward port: 400 saying this is a proxy", async () => {
    const body = await expectRejected(fwd, `GET /hello HTTP/1.1\r\nHost: 127.0.0.1:${http4.port}\r\n\r\n`, 400);
    expect(body.toLowerCase()).toContain("proxy");
  });

  test("https:// and ftp:// absolute-form: 501 (use CONNECT), and nothing reaches the origin they name", async () => {
    for (const scheme of ["https", "ftp"]) {
      const body = await rejectedBeforeOrigin((o) => `GET ${scheme}://${authority(o)}/a HTTP/1.1\r\nHost: ${authority(o)}\r\n\r\n`, 501);
      expect(body).toContain("use CONNECT");
    }
  });

  test("Content-Length and Transfer-Encoding together", async () => {
    await rejectedBeforeOrigin(
      (o) =>
        `POST ${o.url("/a")} HTTP/1.1\r\nHost: ${authority(o)}\r\nContent-Length: ${5 + smuggled(o).length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled(o)}`,
    );
  });

  test("two different Content-Length values", async () => {
    await rejectedBeforeOrigin((o) => `POST ${o.url("/a")} HTTP/1.1\r\nHost: ${authority(o)}\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n${smuggled(o)}`);
  });

  test("obs-fold (a continuation line)", async () => {
    await rejectedBeforeOrigin((o) => `GET ${o.url("/a")} HTTP/1.1\r\nHost: ${authority(o)}\r\nX-Folded: a\r\n b\r\n\r\n`);
  });

  test("whitespace between a field name and the colon (Transfer-Encoding : chunked)", async () => {
    await rejectedBeforeOrigin(
      (o) => `POST ${o.url("/a")} HTTP/1.1\r\nHost: ${authority(o)}\r\nContent-Length: 0\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled(o)}`,
    );
  });

  test("HTTP/1.1 without Host", async () => {
    await rejectedBeforeOrigin((o) => `GET ${o.url("/a")} HTTP/1.1\r\nX-Nothing: here\r\n\r\n`);
  });

  for (const [name, size] of [
    ["not hex", "zz"],
    ["too many digits", "1".repeat(40)],
    ["negative", "-1"],
  ] as const) {
    test(`a bad chunk size (${name}): 400, the bad chunk and the request hidden behind it never reach the origin`, async () => {
      const origin = freshOrigin();
      const x = await rawExchange(
        fwd.ports.forward!,
        `POST ${origin.url("/chunky")} HTTP/1.1\r\nHost: ${authority(origin)}\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\nhello\r\n0\r\n\r\n${smuggled(origin)}`,
      );
      expect(x.finals.length).toBe(1);
      await expectErrorAnswer(x.client, x.finals[0], 400);
      // The head may have been forwarded before the body was read; the bad chunk and what
      // follows it must not be.
      const received = await afterBarrier(origin);
      expect(received).not.toContain(`${size}\r\n`);
      expect(received).not.toContain("hello");
      expect(received).not.toContain("/smuggled");
    });
  }

  test("request line over 8 KiB: 414", async () => {
    await rejectedBeforeOrigin((o) => get(o.url(`/${"a".repeat(9 * KiB)}`)), 414);
  });

  test("101 header fields: 431", async () => {
    const fields = Array.from({ length: 101 }, (_, i) => `X-F${i}: v\r\n`).join("");
    await rejectedBeforeOrigin((o) => get(o.url("/a"), fields), 431);
  });

  test("a header section over 32 KiB (few, large fields): 431", async () => {
    const fields = Array.from({ length: 5 }, (_, i) => `X-Big${i}: ${"b".repeat(7 * KiB)}\r\n`).join("");
    await rejectedBeforeOrigin((o) => get(o.url("/a"), fields), 431);
  });
});

describe("forward http: upstream failures", () => {
  test("a refused origin: 502 with Connection: close", async () => {
    const port = closedPort();
    const body = await expectRejected(fwd, get(`http://127.0.0.1:${port}/x`), 502);
    expect(body.toLowerCase()).toContain("refused");
  });

  test(`a name that does not resolve (http://${NO_SUCH_HOST}/): 502`, async () => {
    await expectRejected(fwd, get(`http://${NO_SUCH_HOST}/`), 502);
  });

  test("after a good response on a keep-alive connection, a refused origin still gets its own 502", async () => {
    const port = closedPort();
    const x = await rawExchange(fwd.ports.forward!, get(http4.url("/hello")) + get(`http://127.0.0.1:${port}/`), { count: 2 });
    expect(x.finals.map((r) => r.status)).toEqual([200, 502]);
    expect(x.finals[0]!.body.toString()).toBe(HELLO);
    await expectErrorAnswer(x.client, x.finals[1], 502);
  });

  test("an origin that accepts and never answers: 504 after --response-timeout", async () => {
    const silent = rawOrigin(() => {});
    extra.push(silent);
    const p = await startProxy([...FORWARD, "--response-timeout", "300ms"]);
    const x = await rawExchange(p.ports.forward!, get(silent.url("/never")), { timeoutMs: 15_000 });
    await expectErrorAnswer(x.client, x.finals[0], 504);
    expect(silent.received()).toStartWith("GET /never HTTP/1.1\r\n"); // the request did go out
    await p.stop();
  });

  test("an origin dying mid-body: the client sees the truncated body and a close, never a second status line", async () => {
    const dying = rawOrigin((conn) => {
      if (conn.answered === 0 && conn.received.includes("\r\n\r\n")) {
        conn.answered = 1;
        conn.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: application/octet-stream\r\n\r\n0123456789");
        conn.end();
      }
    });
    extra.push(dying);
    const c = await RawClient.connect(fwd.ports.forward!);
    await c.write(get(dying.url("/partial")));
    await c.waitFor(() => c.closed || c.gotFin, 15_000, "the proxy to close the client");
    const x = responsesOf(c);
    expect(x.finals.length).toBe(1);
    expect(x.finals[0]!.status).toBe(200);
    expect(x.finals[0]!.complete).toBe(false);
    expect(x.finals[0]!.body.toString()).toBe("0123456789");
    expect(c.text().match(/HTTP\/1\.[01] \d{3}/g)?.length).toBe(1);
    c.close();
  });
});

describe("forward http: half-close and the header deadlineMs", () => {
  test("a client that half-closes after its request still gets the whole 1 MiB response", async () => {
    const c = await RawClient.connect(fwd.ports.forward!);
    await c.write(get(http4.url(`/bytes?n=${MiB}&seed=9`)));
    c.halfClose();
    await c.waitFor(() => {
      const f = responsesOf(c).finals[0];
      return (f?.complete ?? false) || c.closed;
    }, 20_000, "the whole response");
    const r = responsesOf(c).finals[0]!;
    expect(r.status).toBe(200);
    expect(r.complete).toBe(true);
    expect(r.body.length).toBe(MiB);
    expect(sha256Hex(r.body)).toBe(r.header("x-sha256")!);
    c.close();
  });

  test("a client stalled mid request-line gets 408 (or a close) while another client is served", async () => {
    const p = await startProxy([...FORWARD, "--header-timeout", "300ms"]);
    const stalled = await RawClient.connect(p.ports.forward!);
    await stalled.write(`GET ${http4.url("/hel")}`); // half a request line, then nothing
    const served = await rawExchange(p.ports.forward!, get(http4.url("/hello")));
    expect(served.finals[0]!.status).toBe(200);
    expect(served.finals[0]!.body.toString()).toBe(HELLO);
    served.client.close();
    await stalled.waitFor(() => stalled.closed || stalled.gotFin, 15_000, "the stalled client to be closed");
    if (stalled.receivedBytes > 0) {
      const x = responsesOf(stalled);
      expect(x.finals.length).toBe(1);
      await expectErrorAnswer(stalled, x.finals[0], 408);
    }
    await p.stop();
  });
});
