/**
 * HTTP reverse proxy end to end (SPEC §3, §4), through a real proxy process: every request form
 * (origin-form, absolute-form naming any host, CONNECT to any authority) reaches the workload and
 * nothing else (never an open relay); Host is kept; X-Forwarded-For/-Proto/-Host are the proxy's
 * own, and no other X-Forwarded-* or Forwarded of the client's gets through; Via is set; keep-alive and pipelining; WebSocket upgrade; bodies
 * both ways with Bun's fetch as a real client; half-close; error answers, and malformed requests
 * that must reach no workload.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RawClient, closedPort, patternChunk, sha256 } from "./helpers/net.ts";
import {
  type Origin,
  type RawOrigin,
  type WireResponse,
  answerEachHead,
  awaitResponses,
  headCount,
  httpOrigin,
  parseResponses,
  rawExchange,
  rawOrigin,
  responsesOf,
} from "./helpers/origins.ts";
import { type RunningProxy, killAll, startProxy, startWithClosedWorkload } from "./helpers/proxy.ts";
import { metricsOf, until } from "./helpers/hardening.ts";

const HELLO = "hello from origin";
const NO_SUCH_HOST = "nonexistent.invalid";
const MiB = 1024 * 1024;

let workload: Origin;
let rev: RunningProxy; // reverse http -> workload
const extra: Array<{ stop(): void }> = [];

function reverseHttp(port: number, more: string[] = []): Promise<RunningProxy> {
  return startProxy(["--proxy-type", "reverse", "--proxy-protocol", "http", "--proxy-host", "127.0.0.1", "--proxy-port", String(port), ...more]);
}

beforeAll(async () => {
  workload = httpOrigin("127.0.0.1");
  rev = await reverseHttp(workload.port);
}, 60_000);

afterAll(() => {
  killAll();
  for (const s of [workload, ...extra]) s?.stop();
});

/** A raw workload that answers "raw" to each head (its received() shows what reached it), behind a reverse proxy of its own. */
async function rawWorkload(): Promise<{ raw: RawOrigin; p: RunningProxy }> {
  const raw = rawOrigin(answerEachHead("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw"));
  extra.push(raw);
  return { raw, p: await reverseHttp(raw.port) };
}

function sha256Hex(b: Uint8Array): string {
  const h = sha256();
  h.update(b);
  return h.hex();
}

function json(r: WireResponse): Record<string, string> {
  return JSON.parse(r.body.toString()) as Record<string, string>;
}

async function expectErrorAnswer(client: RawClient, r: WireResponse | undefined, status: number): Promise<string> {
  expect(r, `expected a ${status} answer, got ${JSON.stringify(client.text().slice(0, 300))}`).toBeDefined();
  expect(r!.status).toBe(status);
  expect(r!.header("connection")?.toLowerCase()).toBe("close");
  expect(r!.header("content-type")?.toLowerCase() ?? "").toStartWith("text/plain");
  const body = r!.body.toString("utf8");
  expect(body.trim().length).toBeGreaterThan(0);
  expect(body.length).toBeLessThan(512);
  await client.waitFor(() => client.closed || client.gotFin, 10_000, "the proxy to close after an error answer");
  return body;
}

// ---------------------------------------------------------------------------------------------

describe("reverse http: everything goes to the workload, with the proxy's forwarding fields", () => {
  test("origin-form: Host kept, client X-Forwarded-* replaced by the real client, Via set", async () => {
    const x = await rawExchange(
      rev.ports.reverse!,
      "GET /echo-headers HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-For: 127.6.6.6\r\nX-Forwarded-For: 127.7.7.7\r\n" +
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Custom: kept\r\n\r\n",
    );
    expect(x.finals[0]!.status).toBe(200);
    const seen = json(x.finals[0]!);
    expect(seen.host).toBe("app.example.com");
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["x-forwarded-host"]).toBe("app.example.com");
    expect(seen.via).toContain("1.1 sidecar-proxy");
    expect(seen["x-custom"]).toBe("kept");
    x.client.close();
  });

  test("every client-sent X-Forwarded-* (Port, Prefix, Ssl, ...) and Forwarded is removed, on the plain and the general path", async () => {
    const spoofed =
      "X-Forwarded-Port: 8443\r\nx-forwarded-prefix: /admin\r\nX-FORWARDED-SSL: on\r\nX-Forwarded-Server: edge\r\nX-Forwarded-Scheme: https\r\n" +
      "Forwarded: for=127.6.6.6;proto=https\r\nX-Forwarded-For: 127.6.6.6\r\nX-Not-Forwarded-For: kept\r\n";
    // Origin-form takes the byte-level shortcut; `Connection: close, X-Hop` (a named field)
    // and absolute-form are left to the general path.
    const x = await rawExchange(
      rev.ports.reverse!,
      `GET /echo-headers HTTP/1.1\r\nHost: app.example.com\r\n${spoofed}\r\n` +
        `GET http://${NO_SUCH_HOST}/echo-headers HTTP/1.1\r\nHost: ${NO_SUCH_HOST}\r\n${spoofed}\r\n` +
        `GET /echo-headers HTTP/1.1\r\nHost: app.example.com\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n${spoofed}\r\n`,
      { count: 3 },
    );
    expect(x.finals.map((r) => r.status)).toEqual([200, 200, 200]);
    for (const r of x.finals) {
      const seen = json(r);
      const forwarding = Object.keys(seen)
        .filter((k) => k.startsWith("x-forwarded-") || k === "forwarded")
        .sort();
      expect(forwarding).toEqual(["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]);
      expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
      expect(seen["x-forwarded-proto"]).toBe("http");
      expect(seen["x-not-forwarded-for"]).toBe("kept");
    }
    x.client.close();
  });

  test("without client X-Forwarded-*: the proxy adds them", async () => {
    const x = await rawExchange(rev.ports.reverse!, "GET /echo-headers HTTP/1.1\r\nHost: svc.local:8080\r\n\r\n");
    const seen = json(x.finals[0]!);
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["x-forwarded-host"]).toBe("svc.local:8080");
    expect(seen.host).toBe("svc.local:8080");
    x.client.close();
  });

  test("absolute-form naming another host and port still reaches the workload (never an open relay)", async () => {
    const other = closedPort(); // nothing listens there: reaching it would fail
    const before = workload.requests;
    const x = await rawExchange(
      rev.ports.reverse!,
      `GET http://127.0.0.1:${other}/hello HTTP/1.1\r\nHost: 127.0.0.1:${other}\r\n\r\n` +
        `GET http://${NO_SUCH_HOST}/echo-headers HTTP/1.1\r\nHost: ${NO_SUCH_HOST}\r\n\r\n`,
      { count: 2 },
    );
    expect(x.finals.map((r) => r.status)).toEqual([200, 200]);
    expect(x.finals[0]!.body.toString()).toBe(HELLO);
    const seen = json(x.finals[1]!);
    expect(seen.host).toBe(NO_SUCH_HOST);
    expect(seen["x-forwarded-host"]).toBe(NO_SUCH_HOST);
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(workload.requests - before).toBe(2);
    x.client.close();
  });

  test("absolute-form with https:// or any other scheme (any case, any port) also reaches the workload, in origin-form with Host from the URL", async () => {
    const { raw, p } = await rawWorkload();
    const x = await rawExchange(
      p.ports.reverse!,
      "GET https://else.invalid/zz HTTP/1.1\r\nHost: else.invalid\r\n\r\n" +
        "GET HTTPS://else.invalid:8443/zz?q=1 HTTP/1.1\r\nHost: else.invalid\r\n\r\n" +
        "GET https://[::1]:443 HTTP/1.1\r\nHost: other.invalid\r\n\r\n" +
        "GET ftp://else.invalid/f HTTP/1.1\r\nHost: else.invalid\r\n\r\n" +
        "GET ftp://else.invalid:21/f HTTP/1.1\r\nHost: else.invalid\r\n\r\n",
      { count: 5 },
    );
    expect(x.finals.map((r) => `${r.status} ${r.body.toString()}`)).toEqual(["200 raw", "200 raw", "200 raw", "200 raw", "200 raw"]);
    const got = raw.received();
    expect(got.match(/^GET \S* HTTP\/1\.1\r$/gm)).toEqual(["GET /zz HTTP/1.1\r", "GET /zz?q=1 HTTP/1.1\r", "GET / HTTP/1.1\r", "GET /f HTTP/1.1\r", "GET /f HTTP/1.1\r"]);
    // The scheme's default port (443) is left out, as http's 80 is; a scheme without one keeps any port given.
    expect(got.match(/^Host: .*(?=\r$)/gm)).toEqual(["Host: else.invalid", "Host: else.invalid:8443", "Host: [::1]", "Host: else.invalid", "Host: else.invalid:21"]);
    expect(got.match(/^X-Forwarded-(?:Host|Proto): .*(?=\r$)/gm)).toEqual([
      "X-Forwarded-Proto: http",
      "X-Forwarded-Host: else.invalid",
      "X-Forwarded-Proto: http",
      "X-Forwarded-Host: else.invalid:8443",
      "X-Forwarded-Proto: http",
      "X-Forwarded-Host: [::1]",
      "X-Forwarded-Proto: http",
      "X-Forwarded-Host: else.invalid",
      "X-Forwarded-Proto: http",
      "X-Forwarded-Host: else.invalid:21",
    ]);
    x.client.close();
    await p.stop();
  });

  test("CONNECT to any authority: 200, and the tunnel leads to the workload", async () => {
    for (const authority of [`127.0.0.1:${closedPort()}`, `${NO_SUCH_HOST}:443`]) {
      const c = await RawClient.connect(rev.ports.reverse!);
      await c.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
      await c.waitFor(() => c.text().includes("\r\n\r\n") || c.closed, 10_000, "CONNECT answer");
      const head = responsesOf(c, ["CONNECT"]);
      expect(head.finals[0]!.status).toBe(200);
      const headLen = c.text().indexOf("\r\n\r\n") + 4;
      // Inside the tunnel: plain HTTP to the workload.
      await c.write("GET /hello HTTP/1.1\r\nHost: inside\r\nConnection: close\r\n\r\n");
      await c.waitFor(() => c.gotFin || c.closed, 10_000, "the workload's answer through the tunnel");
      const inner = parseResponses(c.bytes().subarray(headLen), ["GET"], true).responses;
      expect(inner.length).toBe(1);
      expect(inner[0]!.status).toBe(200);
      expect(inner[0]!.body.toString()).toBe(HELLO);
      c.close();
    }
  });

  test("the request line and fields reach a raw workload as sent, plus the forwarding fields", async () => {
    const { raw, p } = await rawWorkload();
    const x = await rawExchange(
      p.ports.reverse!,
      "GET /a/b?c=d&e=%2F HTTP/1.1\r\nHost: app.example.com\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\n",
    );
    expect(x.finals[0]!.body.toString()).toBe("raw");
    const got = raw.received();
    expect(got).toStartWith("GET /a/b?c=d&e=%2F HTTP/1.1\r\n");
    const fields = got
      .slice(0, got.indexOf("\r\n\r\n"))
      .split("\r\n")
      .slice(1)
      .map((l) => l.slice(0, l.indexOf(":")).toLowerCase());
    expect(fields).toContain("host");
    expect(fields).toContain("x-keep");
    expect(fields).toContain("x-forwarded-for");
    expect(fields).not.toContain("proxy-connection");
    expect(fields).not.toContain("x-hop");
    x.client.close();
    await p.stop();
  });

  test("obs-text (octets 0x80-0xFF) in field values goes through byte for byte, both ways, at a value's start and end too", async () => {
    const raw = rawOrigin(answerEachHead("HTTP/1.1 200 OK\r\nX-Answer: caf\xe9 \x80\x9f\xff!\r\nX-User: Jos\xc3\xa9\r\nContent-Length: 2\r\n\r\nok"));
    extra.push(raw);
    const p = await reverseHttp(raw.port);
    const x = await rawExchange(p.ports.reverse!, "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9 au \x80\x9f\xff lait\r\nX-User: Jos\xc3\xa9\r\nX-Edge: \xff\r\n\r\n");
    expect(x.finals[0]!.header("x-answer")).toBe("caf\xe9 \x80\x9f\xff!");
    expect(x.finals[0]!.header("x-user")).toBe("Jos\xc3\xa9"); // a response's value may end in obs-text (UTF-8)
    expect(x.finals[0]!.body.toString()).toBe("ok");
    expect(raw.received()).toContain("\r\nX-Name: caf\xe9 au \x80\x9f\xff lait\r\nX-User: Jos\xc3\xa9\r\nX-Edge: \xff\r\n"); // it was 400
    x.client.close();
    await p.stop();
  });

  test("a chunked request body (with a chunk extension and a trailer) reaches the workload byte for byte, twice on one connection", async () => {
    // A raw workload: Bun.serve answers 400 to the next request on a connection after a chunked
    // request with a trailer (its bug, seen directly without the proxy), so it cannot judge this.
    const lastChunk = "0\r\nX-Trailer: t\r\n\r\n";
    const raw = rawOrigin((conn) => {
      const ends = conn.received.split(lastChunk).length - 1;
      while (conn.answered < ends) {
        conn.answered++;
        conn.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      }
    });
    extra.push(raw);
    const p = await reverseHttp(raw.port);
    const parts = [patternChunk(1, 1000), patternChunk(2, 70_000), patternChunk(3, 1)];
    const body: Uint8Array[] = [];
    for (const [i, part] of parts.entries()) body.push(Buffer.from(`${part.byteLength.toString(16)}${i === 0 ? ";ext=1" : ""}\r\n`), part, Buffer.from("\r\n"));
    body.push(Buffer.from(lastChunk));
    const bodyText = Buffer.concat(body).toString("latin1");
    const request = Buffer.concat([Buffer.from("POST /sha256 HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"), ...body]);
    const c = await RawClient.connect(p.ports.reverse!);
    await c.write(Buffer.concat([request, request])); // pipelined: the second starts right after the trailer
    const x = await awaitResponses(c, 2, [], 20_000);
    expect(x.finals.map((r) => `${r.status} ${r.body.toString()}`)).toEqual(["200 ok", "200 ok"]);
    // Each request reached the workload as a rewritten head and then the body as sent.
    const [head1, head2, after] = raw.received().split(bodyText);
    expect(after).toBe("");
    for (const head of [head1!, head2!]) {
      expect(head).toStartWith("POST /sha256 HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n");
      expect(head).toContain("\r\nX-Forwarded-Host: app.example.com\r\n");
      expect(head).toEndWith("\r\n\r\n");
    }
    c.close();
    await p.stop();
  });

  test("keep-alive: sequential and pipelined requests on one connection, in order", async () => {
    const c = await RawClient.connect(rev.ports.reverse!);
    await c.write("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    let x = await awaitResponses(c, 1);
    expect(x.finals[0]!.body.toString()).toBe(HELLO);
    await c.write(
      "GET /bytes?n=100000&seed=3 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo-headers HTTP/1.1\r\nHost: second\r\n\r\nGET /ip HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    x = await awaitResponses(c, 4);
    expect(x.ended).toBe(false);
    expect(x.finals.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(x.finals[1]!.body.length).toBe(100_000);
    expect(sha256Hex(x.finals[1]!.body)).toBe(x.finals[1]!.header("x-sha256")!);
    expect(json(x.finals[2]!).host).toBe("second");
    expect(x.finals[3]!.body.toString()).toBe("127.0.0.1");
    c.close();
  });

  test("an HTTP/1.0 keep-alive client (ab -k): kept open while it asks, closed when it stops asking", async () => {
    const raw = rawOrigin(answerEachHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    extra.push(raw);
    const p = await reverseHttp(raw.port);
    const c = await RawClient.connect(p.ports.reverse!);
    const ask = (path: string, keepAlive: boolean) => `GET ${path} HTTP/1.0\r\n${keepAlive ? "Connection: Keep-Alive\r\n" : ""}Host: app.test\r\n\r\n`;
    await c.write(ask("/one", true));
    let x = await awaitResponses(c, 1);
    await c.write(ask("/two", true));
    x = await awaitResponses(c, 2);
    expect(x.ended).toBe(false);
    await c.write(ask("/three", false));
    x = await awaitResponses(c, 3);
    expect(x.finals.map((r) => `${r.status} ${r.header("connection")} ${r.body.toString()}`)).toEqual(["200 keep-alive ok", "200 keep-alive ok", "200 close ok"]);
    await c.waitFor(() => c.gotFin || c.closed, 10_000, "the proxy to close after the last answer");
    // The workload is asked in HTTP/1.1, with the client's version in Via (RFC 9110 §7.6.3).
    const heads = raw.received().split("\r\n\r\n").filter((h) => h.length > 0);
    expect(heads.map((h) => h.slice(0, h.indexOf("\r\n")))).toEqual(["GET /one HTTP/1.1", "GET /two HTTP/1.1", "GET /three HTTP/1.1"]);
    for (const h of heads) expect(h).toContain("\r\nVia: 1.0 sidecar-proxy");
    c.close();
    await p.stop();
  });

  test("a 4 MiB body written right behind its head (no Expect) arrives intact", async () => {
    const body = patternChunk(124, 4 * MiB);
    const c = await RawClient.connect(rev.ports.reverse!);
    void c.write(Buffer.concat([Buffer.from(`POST /sha256 HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.byteLength}\r\n\r\n`), body]));
    const x = await awaitResponses(c, 1, [], 20_000);
    expect(x.finals[0]?.status).toBe(200);
    expect(x.finals[0]!.body.toString()).toBe(sha256Hex(body));
    c.close();
  });

  test("Bun fetch as a client: 10 MiB up and 10 MiB down intact", async () => {
    const body = patternChunk(123, 10 * MiB);
    const up = await fetch(`http://127.0.0.1:${rev.ports.reverse}/sha256`, { method: "POST", body, signal: AbortSignal.timeout(30_000) });
    expect(up.status).toBe(200);
    expect(await up.text()).toBe(sha256Hex(body));
    const down = await fetch(`http://127.0.0.1:${rev.ports.reverse}/bytes?n=${10 * MiB}&seed=8`, { signal: AbortSignal.timeout(30_000) });
    expect(down.status).toBe(200);
    const got = new Uint8Array(await down.arrayBuffer());
    expect(got.byteLength).toBe(10 * MiB);
    expect(sha256Hex(got)).toBe(down.headers.get("x-sha256")!);
  });

  test("a client that half-closes after its request still gets the whole response", async () => {
    const c = await RawClient.connect(rev.ports.reverse!);
    await c.write(`GET /bytes?n=${MiB}&seed=6 HTTP/1.1\r\nHost: a\r\n\r\n`);
    c.halfClose();
    await c.waitFor(() => (responsesOf(c).finals[0]?.complete ?? false) || c.closed, 20_000, "the whole response");
    const r = responsesOf(c).finals[0]!;
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(MiB);
    expect(sha256Hex(r.body)).toBe(r.header("x-sha256")!);
    c.close();
  });
});

describe("reverse http: what the proxy answers or changes itself (RFC 9110)", () => {
  test("TRACE / OPTIONS with Max-Forwards: 0 are answered by the proxy (§7.6.2): OPTIONS 200, TRACE 405 with Allow (no echo of what earlier hops added); nothing reaches the workload", async () => {
    const raw = rawOrigin(answerEachHead("HTTP/1.1 204 No Content\r\n\r\n"));
    extra.push(raw);
    const p = await reverseHttp(raw.port);
    const trace = "TRACE /t?x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nX-Api-Key: SECRET1\r\nCookie: s=secret\r\n\r\n";
    const t = await rawExchange(p.ports.reverse!, trace);
    expect(t.finals[0]!.status).toBe(405);
    expect(t.finals[0]!.header("allow")).toBe("GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, PATCH");
    expect(t.finals[0]!.header("connection")).toBe("close");
    expect(t.client.text()).not.toContain("SECRET1");
    t.client.close();
    const o = await rawExchange(p.ports.reverse!, "OPTIONS * HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n");
    expect(o.finals[0]!.status).toBe(200);
    expect(o.finals[0]!.header("content-length")).toBe("0");
    o.client.close();
    expect(raw.received()).toBe(""); // it used to go on with Max-Forwards: 0 unchanged
    await p.stop();
  });

  test("Max-Forwards above 0 goes on one less on TRACE and OPTIONS, unchanged on other methods", async () => {
    const raw = rawOrigin(answerEachHead("HTTP/1.1 204 No Content\r\n\r\n"));
    extra.push(raw);
    const p = await reverseHttp(raw.port);
    const x = await rawExchange(
      p.ports.reverse!,
      "OPTIONS /o HTTP/1.1\r\nHost: a\r\nMax-Forwards: 3\r\n\r\nTRACE /t HTTP/1.1\r\nHost: a\r\nMax-Forwards: 1\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\nMax-Forwards: 3\r\n\r\n",
      { count: 3 },
    );
    expect(x.finals.map((r) => r.status)).toEqual([204, 204, 204]);
    const got = raw.received();
    expect(got).toMatch(/^OPTIONS \/o HTTP\/1\.1\r\n(?:[^\r]*\r\n)*?Max-Forwards: 2\r\n/);
    expect(got).toMatch(/\r\nTRACE \/t HTTP\/1\.1\r\n(?:[^\r]*\r\n)*?Max-Forwards: 0\r\n/);
    expect(got).toMatch(/\r\nGET \/g HTTP\/1\.1\r\n(?:[^\r]*\r\n)*?Max-Forwards: 3\r\n/);
    x.client.close();
    // Not 1*DIGIT (0xA0 is no OWS): 400, not passed on for a hop that trims it to count otherwise.
    const bad = await rawExchange(p.ports.reverse!, Buffer.from("TRACE /t HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\xa0\r\n\r\n", "latin1"));
    expect(bad.finals[0]!.status).toBe(400);
    bad.client.close();
    expect(raw.received()).not.toContain("\xa0");
    await p.stop();
  });

  test("an HTTP/1.0 request's Expect: 100-continue does not go upstream (§10.1.1: to be ignored), and a 1xx loses the framing fields an origin put on it (§8.6)", async () => {
    const raw = rawOrigin(answerEachHead("HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    extra.push(raw);
    const p = await reverseHttp(raw.port);
    const old = await rawExchange(p.ports.reverse!, "POST /a HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
    expect(old.finals[0]!.status).toBe(200);
    expect(old.responses.map((r) => r.status)).toEqual([200]); // no 1xx to an HTTP/1.0 client
    old.client.close();
    const sent = raw.received();
    expect(sent).toStartWith("POST /a HTTP/1.1\r\n");
    expect(sent.toLowerCase()).not.toContain("expect:");
    const eleven = await rawExchange(p.ports.reverse!, "POST /b HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
    expect(eleven.responses.map((r) => r.status)).toEqual([100, 200]);
    expect(eleven.responses[0]!.header("content-length")).toBeUndefined();
    expect(eleven.finals[0]!.body.toString()).toBe("ok");
    eleven.client.close();
    await p.stop();
  });
});

describe("reverse http: the response head's limits", () => {
  test("100 fields pass (99 Set-Cookie and Content-Length); 101 are a 502, as for requests (--max-header-count)", async () => {
    const head = (cookies: number) => `HTTP/1.1 200 OK\r\n${Array.from({ length: cookies }, (_, i) => `Set-Cookie: c${i}=${i}\r\n`).join("")}Content-Length: 2\r\n\r\nok`;
    for (const [cookies, status] of [[99, 200], [100, 502]] as const) {
      const raw = rawOrigin(answerEachHead(head(cookies)));
      extra.push(raw);
      const p = await reverseHttp(raw.port);
      const c = await RawClient.connect(p.ports.reverse!);
      await c.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      await c.waitFor(() => (responsesOf(c).finals[0]?.complete ?? false) || c.closed, 10_000, "the response");
      const r = responsesOf(c).finals[0]!;
      expect([cookies, r.status]).toEqual([cookies, status]);
      if (status === 200) expect(r.headers.filter(([name]) => name.toLowerCase() === "set-cookie").length).toBe(99);
      c.close();
    }
  });
});

describe("reverse http: lingering close (RFC 9112 §9.6)", () => {
  test("bytes a client sends after the proxy has ended a Connection: close response do not reset away its unread rest", async () => {
    // The client stops reading after the head, so most of the body waits in the kernel's queues
    // when the proxy ends the connection (its log line says so), and then sends more. A plain
    // close(2) answers those bytes with a reset, and the queued body is lost; a lingering close
    // half-closes, reads and drops them, and the client reads the whole body, then the FIN.
    const p = await reverseHttp(workload.port);
    const n = 256 * 1024;
    const c = await RawClient.connect(p.ports.reverse!);
    let paused = false;
    c.onChunk = () => {
      if (paused) return;
      paused = true;
      c.pause();
    };
    await c.write(`GET /bytes?n=${n}&seed=7 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    const line = await p.waitForLog((l) => l.msg === "connection" && l.client === `127.0.0.1:${c.localPort}`, 20_000, "the proxy to end the connection");
    expect(line.termination).toBe("server-fin");
    expect(c.receivedBytes).toBeLessThan(n); // most of the body is still queued toward the client
    expect((await metricsOf(p)).value("sidecar_lingering_sockets")).toBe(1);
    await c.write("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    c.resume();
    await c.waitFor(() => c.gotFin || c.closed, 20_000, "the end of the response");
    const r = responsesOf(c).finals[0]!;
    expect(c.closeError).toBeUndefined();
    expect(r.body.length).toBe(n);
    expect(sha256Hex(r.body)).toBe(r.header("x-sha256")!);
    expect(c.gotFin).toBe(true);
    c.close(); // our FIN ends the lingering
    await until(() => metricsOf(p), (m) => m.value("sidecar_lingering_sockets") === 0, 10_000, "no socket lingering");
  });
});

describe("reverse http: a connection being closed reads no further request", () => {
  test("the rest of a body answered early, sent while the answer waits in the proxy's queue, is dropped: never forwarded as a request, no second status line", async () => {
    // The workload answers 8 MiB at once without reading the POST's body; the client does not
    // read, so the answer waits in the proxy's queue (--max-buffered-bytes 16MiB) after the
    // exchange has ended and the upstream has been let go of (it was reset: its request body
    // was never complete). Only then does the client send the body's last bytes, which read as a request.
    const n = 8 * MiB;
    const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    const raw = rawOrigin((conn) => {
      if (conn.answered > 0 || !conn.received.includes("\r\n\r\n")) return;
      conn.answered++;
      conn.write(`HTTP/1.1 200 OK\r\nContent-Length: ${n}\r\n\r\n`);
      conn.write(patternChunk(5, n));
    });
    extra.push(raw);
    const p = await reverseHttp(raw.port, ["--max-buffered-bytes", "16MiB"]);
    const c = await RawClient.connect(p.ports.reverse!);
    c.pause();
    await c.write(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${10 + smuggled.length}\r\n\r\n0123456789`);
    await until(async () => raw.closedConnections, (closed) => closed === 1, 20_000, "the proxy to let the upstream go once the answer was read");
    expect(raw.connections).toBe(1);
    await c.write(smuggled);
    c.resume();
    await c.waitFor(() => c.gotFin || c.closed, 20_000, "the end of the answer");
    const { finals } = responsesOf(c);
    expect(finals.map((r) => r.status)).toEqual([200]);
    expect(finals[0]!.body.length).toBe(n);
    expect(raw.connections).toBe(1); // nothing else was dialled
    expect(raw.received()).not.toContain("/smuggled");
  });
});

describe("reverse http: the upstream kept alive between requests", () => {
  test("gets a FIN, not a reset, when its client leaves", async () => {
    const seen: string[] = [];
    const origin = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        data: (s, d) => void (Buffer.from(d).includes("\r\n\r\n") && s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")),
        end: (s) => {
          seen.push("fin");
          s.end();
        },
        error: (_s, err) => void seen.push(`error ${err.message}`),
        close: (_s, err) => void seen.push(err ? `close ${err.message}` : "close"),
      },
    });
    extra.push({ stop: () => origin.stop(true) });
    const p = await reverseHttp(origin.port);
    const c = await RawClient.connect(p.ports.reverse!);
    await c.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor(() => responsesOf(c).finals[0]?.complete ?? false, 10_000, "the response");
    c.close(); // the client leaves; the upstream connection is idle, kept for a next request
    await c.waitFor(() => c.closed, 10_000, "the client side closed");
    const deadlineMs = Date.now() + 10_000;
    while (!seen.some((e) => e.startsWith("close")) && Date.now() < deadlineMs) await Bun.sleep(20);
    expect(seen).toEqual(["fin", "close"]);
  });

  /** An upstream that answers each request and then closes its side, without saying so. */
  function closingOrigin(): { port: number; connections: () => number; heads: string[] } {
    let connections = 0;
    const heads: string[] = [];
    const origin = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open: () => void connections++,
        data: (s, d) => {
          const text = Buffer.from(d).toString("latin1");
          if (!text.includes("\r\n\r\n")) return;
          heads.push(text.slice(0, text.indexOf("\r\n")));
          s.write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ndef");
          s.shutdown();
        },
        end: (s) => void s.end(),
      },
    });
    extra.push({ stop: () => origin.stop(true) });
    return { port: origin.port, connections: () => connections, heads };
  }

  test("that closed as it was reused: an idempotent request without a body is sent again on a new connection", async () => {
    const origin = closingOrigin();
    const p = await reverseHttp(origin.port);
    const c = await RawClient.connect(p.ports.reverse!);
    await c.write("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor(() => responsesOf(c).finals.filter((r) => r.complete).length === 2 || c.closed, 10_000, "two responses");
    expect(responsesOf(c).finals.map((r) => r.status)).toEqual([200, 200]);
    expect(origin.heads.filter((h) => h.startsWith("GET /2 ")).length).toBeGreaterThanOrEqual(1);
    expect(origin.connections()).toBeGreaterThanOrEqual(2);
    c.close();
  });

  test("that closed as it was reused: a request with a body is not sent again (502)", async () => {
    const origin = closingOrigin();
    const p = await reverseHttp(origin.port);
    const c = await RawClient.connect(p.ports.reverse!);
    await c.write("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPUT /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    await c.waitFor(() => responsesOf(c).finals.filter((r) => r.complete).length === 2 || c.closed, 10_000, "two responses");
    const statuses = responsesOf(c).finals.map((r) => r.status);
    // 200 for /1; /2 either reached a fresh connection (200: the close was seen before reuse) or
    // went out on the closing one and was answered 502, never sent twice.
    expect(statuses[0]).toBe(200);
    expect([200, 502]).toContain(statuses[1]!);
    expect(origin.heads.filter((h) => h.startsWith("PUT /2 ")).length).toBeLessThanOrEqual(1);
    c.close();
  });
});

describe("reverse http: WebSocket upgrade", () => {
  test("a WebSocket through the reverse proxy: text and 256 KiB binary echoed, forwarding fields on the upgrade", async () => {
    let upgradeHeaders: Record<string, string> = {};
    const ws = Bun.serve<undefined>({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req, server) {
        upgradeHeaders = {};
        req.headers.forEach((v, k) => (upgradeHeaders[k] = v));
        if (server.upgrade(req)) return undefined;
        return new Response("upgrade expected", { status: 426 });
      },
      websocket: {
        message(socket, message) {
          socket.send(typeof message === "string" ? `echo: ${message}` : message);
        },
      },
    });
    extra.push({ stop: () => void ws.stop(true) });
    const p = await reverseHttp(ws.port!);
    const client = new WebSocket(`ws://127.0.0.1:${p.ports.reverse}/chat`);
    client.binaryType = "arraybuffer";
    const messages: Array<string | ArrayBuffer> = [];
    let waiter: (() => void) | null = null;
    client.onmessage = (e) => {
      messages.push(e.data as string | ArrayBuffer);
      waiter?.();
    };
    const next = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for message ${n}`)), 10_000);
        const check = () => {
          if (messages.length >= n) {
            clearTimeout(t);
            resolve();
          }
        };
        waiter = check;
        check();
      });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("WebSocket open timed out")), 10_000);
      client.onopen = () => {
        clearTimeout(t);
        resolve();
      };
      client.onerror = () => {
        clearTimeout(t);
        reject(new Error("WebSocket error before open"));
      };
    });
    client.send("hi");
    await next(1);
    expect(messages[0]).toBe("echo: hi");
    const blob = patternChunk(31, 256 * 1024);
    client.send(blob);
    await next(2);
    expect(messages[1]).toBeInstanceOf(ArrayBuffer);
    expect(sha256Hex(new Uint8Array(messages[1] as ArrayBuffer))).toBe(sha256Hex(blob));
    expect(upgradeHeaders.upgrade?.toLowerCase()).toBe("websocket");
    expect(upgradeHeaders["x-forwarded-for"]).toBe("127.0.0.1");
    expect(upgradeHeaders.via).toContain("1.1 sidecar-proxy");
    const closed = new Promise<number>((resolve) => (client.onclose = (e) => resolve(e.code)));
    client.close(1000, "done");
    expect(await closed).toBe(1000);
    await p.stop();
  });
});

describe("reverse http: errors", () => {
  test("a refused workload: 502 with Connection: close", async () => {
    const p = await startWithClosedWorkload((port) => reverseHttp(port));
    const x = await rawExchange(p.ports.reverse!, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(x.finals.length).toBe(1);
    await expectErrorAnswer(x.client, x.finals[0], 502);
    await p.stop();
  });

  describe("malformed requests reach no workload", () => {
    let raw: RawOrigin;
    let p: RunningProxy;
    beforeAll(async () => {
      raw = rawOrigin(answerEachHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
      extra.push(raw);
      p = await reverseHttp(raw.port);
    });
    const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    const cases: Array<[string, string, number]> = [
      ["Content-Length with Transfer-Encoding", `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`, 400],
      ["obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n", 400],
      ["space before the colon", `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`, 400],
      ["HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400],
      ["two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
      ["request line over 8 KiB", `GET /${"a".repeat(9 * 1024)} HTTP/1.1\r\nHost: a\r\n\r\n`, 414],
      ["101 header fields", `GET / HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 101 }, (_, i) => `X-F${i}: v\r\n`).join("")}\r\n`, 431],
    ];
    for (const [name, request, status] of cases) {
      test(`${name}: ${status}`, async () => {
        const before = { conns: raw.connections, bytes: raw.received().length };
        const x = await rawExchange(p.ports.reverse!, request);
        expect(x.finals.length).toBe(1);
        await expectErrorAnswer(x.client, x.finals[0], status);
        // Barrier: a valid request on a new connection; then the workload must hold only it.
        const ok = await rawExchange(p.ports.reverse!, "GET /after-barrier HTTP/1.1\r\nHost: a\r\n\r\n");
        expect(ok.finals[0]!.body.toString()).toBe("ok");
        ok.client.close();
        const got = raw.received().slice(before.bytes);
        expect(got).toStartWith("GET /after-barrier HTTP/1.1\r\n");
        expect(headCount(got)).toBe(1);
        expect(raw.connections - before.conns).toBe(1);
      });
    }

    test("a bad chunk size: 400, and neither the bad chunk nor what follows it reaches the workload", async () => {
      const before = raw.received().length;
      const x = await rawExchange(p.ports.reverse!, `POST /chunky HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n${smuggled}`);
      expect(x.finals.length).toBe(1);
      await expectErrorAnswer(x.client, x.finals[0], 400);
      const ok = await rawExchange(p.ports.reverse!, "GET /after-barrier HTTP/1.1\r\nHost: a\r\n\r\n");
      expect(ok.finals[0]!.body.toString()).toBe("ok");
      ok.client.close();
      const got = raw.received().slice(before);
      expect(got).not.toContain("zz\r\n");
      expect(got).not.toContain("hello");
      expect(got).not.toContain("/smuggled");
    });
  });
});
