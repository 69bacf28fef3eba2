/**
 * HttpSession (lib/listeners/http.ts) driven in-process through scripted connections: the
 * client and the upstream are Conns whose every call is recorded and whose input the test
 * feeds, one step at a time, so what the session buffers, pauses, resumes and closes is seen
 * exactly (no sockets, no timing). Reverse listener: every request goes to the workload.
 */
import { describe, expect, test } from "bun:test";
import type { Config } from "../lib/config.ts";
import { ProxyError } from "../lib/errors.ts";
import { DEFAULT_LIMITS, type Limits } from "../lib/limits.ts";
import { INACTIVITY_CHECKS } from "../lib/sweep.ts";
import { HttpSession } from "../lib/listeners/http.ts";
import type { Fields, Logger } from "../lib/log.ts";
import type { Conn, ConnectOptions, Runtime } from "../lib/runtime/types.ts";
import { Tracker, runningBytesDown } from "../lib/tracker.ts";
import { type ListenerContext, relayOptions } from "../lib/tunnel.ts";
import { ScriptedConn, type ScriptedConnOptions } from "./helpers/fake-conn.ts";
import { collectingFaults } from "./helpers/faults.ts";

const text = new TextEncoder();

const quietLog: Logger = { level: 0, droppedLines: 0, error() {}, warn() {}, info() {}, debug() {} } as unknown as Logger;

/** A session on a reverse listener whose every dial opens a new ScriptedConn, handed over in order. */
function session(limits: Partial<Limits> = {}, client = new ScriptedConn(), upstreamOptions: ScriptedConnOptions = {}) {
  const upstreams: ScriptedConn[] = [];
  const runtime = {
    name: "bun",
    connect(_options: ConnectOptions, done: (result: Conn | ProxyError) => void) {
      const up = new ScriptedConn(upstreamOptions);
      upstreams.push(up);
      queueMicrotask(() => done(up));
    },
  } as unknown as Runtime;
  const all = { ...DEFAULT_LIMITS, ...limits };
  const tracker = new Tracker(quietLog);
  const workload = { host: "127.0.0.1", port: 8080 };
  const ctx = {
    name: "reverse",
    protocol: "http",
    config: { auth: null } as unknown as Config,
    limits: all,
    runtime,
    log: quietLog,
    tracker,
    workload,
    workloadKey: "127.0.0.1:8080",
    dialOptions: { timeoutMs: 60_000 },
    relayOptions: relayOptions(all),
    draining: () => false,
  } as unknown as ListenerContext;
  tracker.register("reverse", "http");
  const rec = tracker.open("reverse", "http", "127.0.0.1:40000");
  const s = new HttpSession(ctx, client, rec);
  s.start();
  /** The deadline of the session's current wait passes now (its PhaseClock, as the sweep would). */
  const expire = () => (s as unknown as { clock: { expire(): void } }).clock.expire();
  return { client, upstreams, rec, tracker, expire };
}

/** Lets the dial's microtask (and what follows it) run. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

const GET = "GET / HTTP/1.1\r\nHost: w\r\n\r\n";
const RESPONSE = "HTTP/1.1 204 No Content\r\n\r\n";

describe("pipelined requests: what waits is bounded by --max-buffered-bytes", () => {
  test("a client that pipelines without end is paused, and stays paused until the backlog is under the limit", async () => {
    const max = 16 * 1024;
    const { client, upstreams } = session({ maxBufferedBytes: max });
    const chunk = text.encode(GET.repeat(Math.ceil((64 * 1024) / GET.length)));
    let fed = 0;
    let answered = 0;
    let peak = 0;
    // One chunk per round while the session reads, one response per round (an upstream that
    // answers in a network round trip, not at once).
    for (let round = 0; round < 200; round++) {
      if (!client.paused && !client.closed) {
        client.events!.onData(chunk);
        fed += chunk.byteLength;
      }
      await settle();
      const up = upstreams.at(-1)!;
      const requestsSent = up.text().split("\r\n\r\n").length - 1;
      if (requestsSent > answered) {
        up.events!.onData(text.encode(RESPONSE));
        answered++;
      }
      await settle();
      // What the session holds: read from the client, not yet sent upstream as a request.
      peak = Math.max(peak, fed - requestsSent * GET.length);
    }
    expect(answered).toBeGreaterThan(100);
    // At most the limit plus the one read that crossed it (before: one more read per exchange).
    expect(peak).toBeLessThanOrEqual(max + chunk.byteLength);
  });
});

describe("upstream connections the session lets go of are closed", () => {
  /** A session after one GET answered 204: its upstream is kept alive and idle. */
  async function afterOneExchange() {
    const s = session();
    s.client.events!.onData(text.encode(GET));
    await settle();
    const up = s.upstreams[0]!;
    up.events!.onData(text.encode(RESPONSE));
    return { ...s, up };
  }

  test("an idle kept-alive upstream that sends its FIN gets ours (it sat in CLOSE_WAIT for as long as the client stayed)", async () => {
    const { client, up } = await afterOneExchange();
    expect(client.text()).toStartWith("HTTP/1.1 204 ");
    expect(up.calls).toEqual([]); // kept for the next request
    up.events!.onEnd(); // the origin's keep-alive timeout
    expect(up.calls).toEqual(["end"]);
    expect(client.closed).toBe(false);
  });

  test("an idle kept-alive upstream that sends bytes nobody asked for is out of step: it is reset, and the next request gets a new connection", async () => {
    const { client, upstreams, up } = await afterOneExchange();
    expect(up.calls).toEqual([]); // kept for the next request
    up.events!.onData(text.encode("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"));
    expect(up.calls).toEqual(["destroy"]);
    expect(client.closed).toBe(false);
    client.events!.onData(text.encode(GET));
    await settle();
    expect(upstreams).toHaveLength(2);
    expect(upstreams[1]!.text()).toStartWith("GET / HTTP/1.1\r\n");
    upstreams[1]!.events!.onData(text.encode(RESPONSE));
    expect(client.text().match(/HTTP\/1\.1 \d{3} /g)).toEqual(["HTTP/1.1 204 ", "HTTP/1.1 204 "]); // EVIL reached nobody
    expect(client.text()).not.toContain("EVIL");
  });

  test("an upstream that answers before the whole request body is reset, not ended behind bytes it will never read", async () => {
    const { client, upstreams } = session();
    client.events!.onData(text.encode("POST /upload HTTP/1.1\r\nHost: w\r\nContent-Length: 1000000\r\n\r\n" + "x".repeat(1000)));
    await settle();
    const up = upstreams[0]!;
    up.queuedBytes = 65_536; // it stopped reading
    up.events!.onData(text.encode("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"));
    expect(up.calls).toEqual(["destroy"]);
    expect(client.text()).toStartWith("HTTP/1.1 413 ");
    expect(client.calls).toEqual(["endLingering"]); // the client's connection ends after the answer
  });
});

describe("an upgrade hands the connection to the relay unpaused", () => {
  const UPGRADE = "GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const SWITCHED = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";

  test("early bytes past --max-buffered-bytes in the request's own read: the client reads again once the relay has them", async () => {
    const { client, upstreams } = session({ maxBufferedBytes: 16 * 1024 });
    client.events!.onData(text.encode(UPGRADE + "x".repeat(20_000)));
    await settle();
    expect(client.paused).toBe(true); // the early bytes wait for the 101
    upstreams[0]!.events!.onData(text.encode(SWITCHED));
    await settle();
    expect(upstreams[0]!.text()).toEndWith("x".repeat(20_000)); // handed on as tunnel data
    expect(client.paused).toBe(false);
  });

  test("the same bytes sent while the 101 is awaited", async () => {
    const { client, upstreams } = session({ maxBufferedBytes: 16 * 1024 });
    client.events!.onData(text.encode(UPGRADE));
    await settle();
    client.events!.onData(text.encode("x".repeat(20_000)));
    upstreams[0]!.events!.onData(text.encode(SWITCHED));
    await settle();
    expect(client.paused).toBe(false);
  });
});

describe("a 101 is relayed only as the answer to the upgrade the request offered (RFC 9110 §7.8)", () => {
  const switched = (protocol: string | null) =>
    `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n${protocol === null ? "" : `Upgrade: ${protocol}\r\n`}\r\n`;
  const upgradeRequest = (offer: string) => `GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: ${offer}\r\n\r\n`;

  /** The client's answer when the upstream sends `answer` (then new-protocol bytes) to `request`. */
  async function answerTo(request: string, answer: string) {
    const { client, upstreams } = session();
    client.events!.onData(Buffer.from(request, "latin1")); // one octet per char, as on the wire
    await settle();
    const up = upstreams[0]!;
    up.events!.onData(text.encode(answer + "\x81\x05hello"));
    await settle();
    return { client, up };
  }

  test("to a request that asked for no upgrade: 502, the upstream dropped, no 101 and no byte of the new protocol reach the client", async () => {
    const { client, up } = await answerTo(GET, switched("websocket"));
    expect(client.text()).toStartWith("HTTP/1.1 502 ");
    expect(client.text()).not.toContain("HTTP/1.1 101");
    expect(client.text()).not.toContain("hello");
    expect(up.closed).toBe(true);
  });

  test("naming a protocol the request did not offer, or none: 502", async () => {
    for (const answer of [switched("h2c"), switched("websocket/8"), switched("websocket, h2c"), switched(null)]) {
      const { client, up } = await answerTo(upgradeRequest("websocket/13"), answer);
      expect(client.text(), answer).toStartWith("HTTP/1.1 502 ");
      expect(client.text(), answer).not.toContain("hello");
      expect(up.closed).toBe(true);
    }
  });

  test("the 502 quotes the client's Upgrade value escaped, with nosniff: no raw C1 controls, no markup a browser would sniff", async () => {
    // Octets 0x85 and 0x9B (obs-text: a field value may hold them) are U+0085 and U+009B read as latin1.
    const { client } = await answerTo(upgradeRequest("<script>x</script>\u0085\u009b"), switched("websocket"));
    const answer = client.text();
    expect(answer).toStartWith("HTTP/1.1 502 ");
    expect(answer).toContain("\r\nX-Content-Type-Options: nosniff\r\n");
    expect(answer).toContain('("<script>x</script>\\u0085\\u009b")');
    expect(/[\u0080-\u009f]/.test(answer)).toBe(false);
  });

  test("relayed without its hop-by-hop fields; Upgrade and Connection: Upgrade stay (added when the origin left Connection out)", async () => {
    const hops = "Connection: Upgrade, X-Hop\r\nUpgrade: websocket\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nSec-WebSocket-Accept: a\r\n";
    for (const [answer, connection] of [
      [`HTTP/1.1 101 Switching Protocols\r\n${hops}\r\n`, "Connection: Upgrade\r\n"],
      ["HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nKeep-Alive: timeout=5\r\n\r\n", "Connection: Upgrade\r\n"],
    ] as const) {
      const { client } = await answerTo(upgradeRequest("websocket"), answer);
      const head = client.text().slice(0, client.text().indexOf("\r\n\r\n") + 2);
      expect(head, answer).toStartWith("HTTP/1.1 101 ");
      expect(head).toContain("Upgrade: websocket\r\n");
      expect(head).toContain(connection);
      for (const gone of ["X-Hop", "Keep-Alive", "Proxy-Authenticate", "Connection: Upgrade, X-Hop"]) expect(head).not.toContain(gone);
      expect(client.text()).toEndWith("\x81\x05hello");
    }
  });

  test("naming an offered one (any case, with or without its version): the tunnel opens", async () => {
    for (const [offer, answer] of [
      ["websocket", "WebSocket"],
      ["h2c, websocket/13", "websocket"],
      ["websocket", "websocket/13"],
      ["foo/1, bar", "foo/1, bar"],
    ] as const) {
      const { client, up } = await answerTo(upgradeRequest(offer), switched(answer));
      expect(client.text(), `${offer} -> ${answer}`).toStartWith("HTTP/1.1 101 ");
      expect(client.text()).toEndWith("\x81\x05hello");
      expect(up.closed).toBe(false);
    }
  });
});

describe("a client FIN while its request body is still due", () => {
  const POST = "POST /upload HTTP/1.1\r\nHost: w\r\nContent-Length: 1000000\r\n\r\n";

  test("after part of the body went to the upstream: 400 at once, the upstream reset (not both held for --response-timeout)", async () => {
    const { client, upstreams } = session();
    client.events!.onData(text.encode(POST + "x".repeat(1000)));
    await settle();
    const up = upstreams[0]!;
    expect(up.text()).toEndWith("x".repeat(1000));
    client.events!.onEnd();
    expect(client.text()).toStartWith("HTTP/1.1 400 ");
    expect(client.text()).toContain("before the request body was complete");
    expect(up.calls).toEqual(["destroy"]);
  });

  test("while the upstream is being dialled: answered once it connects, nothing sent to it (not the head either), and it is reset", async () => {
    for (const request of [POST + "x".repeat(10), "POST /c HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"]) {
      const { client, upstreams } = session();
      client.events!.onData(text.encode(request));
      client.events!.onEnd();
      expect(client.text()).toBe("");
      await settle();
      expect(client.text()).toStartWith("HTTP/1.1 400 ");
      expect(upstreams[0]!.calls).toEqual(["destroy"]);
      expect(upstreams[0]!.text()).toBe("");
    }
  });

  test("a whole body then FIN (a half-closing client) is served as before; so is a FIN after the response began", async () => {
    const whole = session();
    whole.client.events!.onData(text.encode("POST /a HTTP/1.1\r\nHost: w\r\nContent-Length: 3\r\n\r\nabc"));
    whole.client.events!.onEnd();
    await settle();
    whole.upstreams[0]!.events!.onData(text.encode(RESPONSE));
    expect(whole.client.text()).toStartWith("HTTP/1.1 204 ");

    const early = session();
    early.client.events!.onData(text.encode(POST + "x".repeat(10)));
    await settle();
    early.upstreams[0]!.events!.onData(text.encode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe"));
    early.client.events!.onEnd();
    early.upstreams[0]!.events!.onData(text.encode("llo"));
    expect(early.client.text()).toStartWith("HTTP/1.1 200 ");
    expect(early.client.text()).toEndWith("hello");
  });
});

describe("bytesDown is what the client was sent", () => {
  test("running counts leave out what is queued toward the client; a cut takes it out of the total, which never goes down", async () => {
    const { client, upstreams, rec, tracker } = session({}, new ScriptedConn({ queueWrites: true }));
    client.events!.onData(text.encode("GET /a HTTP/1.1\r\nHost: w\r\n\r\n"));
    await settle();
    upstreams[0]!.events!.onData(text.encode(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${"x".repeat(1000)}`));
    await settle();
    const queued = client.queuedBytes;
    expect(queued).toBeGreaterThan(1000); // the whole answer waits in the client's queue
    expect(runningBytesDown(rec)).toBe(0);
    client.deliver(600);
    expect(runningBytesDown(rec)).toBe(600);
    client.destroy(); // cut with the rest still queued (a reset, a shutdown, a flush-timeout)
    expect(rec.bytesDown).toBe(600);
    expect(runningBytesDown(rec)).toBe(600);
    expect(tracker.stats.get("reverse")!.bytesDown).toBe(600);
  });
});

describe("a connection the session is closing reads no further request (no desync while the answer flushes)", () => {
  const statusLines = (t: string) => t.match(/HTTP\/1\.1 \d{3} /g) ?? [];
  const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: w\r\n\r\n";

  test("the rest of a body answered early: dropped, not parsed as the next request, no second status line", async () => {
    // closes: false: the answer is still flushing (a client that reads slowly; every close under Deno).
    const { client, upstreams } = session({}, new ScriptedConn({ closes: false }));
    client.events!.onData(text.encode(`POST /upload HTTP/1.1\r\nHost: w\r\nContent-Length: ${10 + SMUGGLED.length}\r\n\r\n0123456789`));
    await settle();
    upstreams[0]!.events!.onData(text.encode("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    await settle();
    expect(client.calls).toContain("endLingering");
    client.events!.onData(text.encode(SMUGGLED)); // the body's last bytes, which read as a request
    client.events!.onData(text.encode("not http at all\r\n\r\n"));
    client.events!.onEnd();
    await settle();
    expect(upstreams.length).toBe(1);
    expect(upstreams[0]!.text()).not.toContain("/smuggled");
    expect(statusLines(client.text())).toEqual(["HTTP/1.1 413 "]);
  });

  test("a request after Connection: close, or after an HTTP/1.0 request: not read", async () => {
    for (const first of ["GET /a HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n", "GET /a HTTP/1.0\r\nHost: w\r\n\r\n"]) {
      const { client, upstreams } = session({}, new ScriptedConn({ closes: false }));
      client.events!.onData(text.encode(first));
      await settle();
      upstreams[0]!.events!.onData(text.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
      await settle();
      client.events!.onData(text.encode(SMUGGLED));
      await settle();
      expect(upstreams.length, first).toBe(1);
      expect(upstreams[0]!.text()).not.toContain("/smuggled");
      expect(statusLines(client.text())).toEqual(["HTTP/1.1 200 "]);
    }
  });
});

describe("deadlines count delivery out of our queues (toward either side) as movement", () => {
  const GET = "GET /big HTTP/1.1\r\nHost: w\r\n\r\n";

  test("--response-timeout: a client draining a large queue while the upstream is paused for it is not cut; one that stops reading is", async () => {
    const { client, upstreams, expire } = session({ maxBufferedBytes: 16 * 1024 * 1024 }, new ScriptedConn({ queueWrites: true }));
    client.events!.onData(text.encode(GET));
    await settle();
    upstreams[0]!.events!.onData(text.encode(`HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n${"x".repeat(1_000_000)}`));
    await settle();
    // The upstream sends nothing more; the client reads a little before each check.
    for (let i = 0; i < 3 * INACTIVITY_CHECKS; i++) {
      client.deliver(1000);
      expire();
    }
    expect(client.closed).toBe(false);
    for (let i = 0; i < INACTIVITY_CHECKS; i++) expire(); // now nothing moves at all
    expect(client.calls).toEqual(["destroy"]); // cut: the response had begun
  });

  test("--response-timeout: an upstream draining a large queued upload while the client is paused for it is not cut (not a 504); one that stops reading is", async () => {
    const { client, upstreams, expire } = session({ maxBufferedBytes: 16 * 1024 * 1024 }, new ScriptedConn(), { queueWrites: true });
    client.events!.onData(text.encode(`POST /up HTTP/1.1\r\nHost: w\r\nContent-Length: 10000000\r\n\r\n${"x".repeat(1_000_000)}`));
    await settle();
    const up = upstreams[0]!;
    expect(up.queuedBytes).toBeGreaterThan(1_000_000);
    for (let i = 0; i < 3 * INACTIVITY_CHECKS; i++) {
      up.deliver(1000);
      expire();
    }
    expect(client.text()).toBe("");
    for (let i = 0; i < INACTIVITY_CHECKS; i++) expire();
    expect(client.text()).toStartWith("HTTP/1.1 504 ");
  });

  test("keep-alive idle runs from the response's delivery: not closed while the client is still reading the last response", async () => {
    const { client, upstreams, expire } = session({}, new ScriptedConn({ queueWrites: true }));
    client.events!.onData(text.encode(GET));
    await settle();
    upstreams[0]!.events!.onData(text.encode(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${"x".repeat(1000)}`));
    await settle();
    expect(client.queuedBytes).toBeGreaterThan(1000); // the exchange is over; its answer still waits toward the client
    client.deliver(500);
    expire(); // the idle deadline passes while the client is reading
    expect(client.calls).toEqual([]);
    client.deliver(client.queuedBytes);
    client.events!.onDrain(); // delivered: the idle time starts now
    expire();
    expect(client.calls).toEqual(["endLingering"]); // idle-timeout after a full idle period
  });

  test("keep-alive idle: a client that reads nothing of the last response for the idle period is closed", async () => {
    const { client, upstreams, expire } = session({}, new ScriptedConn({ queueWrites: true }));
    client.events!.onData(text.encode(GET));
    await settle();
    upstreams[0]!.events!.onData(text.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    await settle();
    expire();
    expect(client.calls).toEqual(["endLingering"]);
  });
});

describe("an upstream that fails before answering", () => {
  /** A session whose GET went upstream, and that upstream, unanswered. */
  async function awaitingAnswer() {
    const s = session();
    s.client.events!.onData(text.encode(GET));
    await settle();
    const up = s.upstreams[0]!;
    expect(up.text()).toStartWith("GET / HTTP/1.1\r\n");
    return { ...s, up };
  }

  test("a reset: 502, logged `server-reset` as a tunnel's would be (it was `upstream-protocol`)", async () => {
    const { client, up, rec } = await awaitingAnswer();
    up.events!.onClose(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    expect(client.text()).toStartWith("HTTP/1.1 502 ");
    expect(client.closed).toBe(true);
    expect(rec.termination).toBe("server-reset");
    expect(rec.error?.kind).toBe("upstreamProtocol");
  });

  test("a bug of ours while handling the upstream's events: 500 and `internal`, not the upstream's fault", async () => {
    const { client, up, rec } = await awaitingAnswer();
    const faults = await collectingFaults((faults) => {
      up.fault(new Error("boom"), "data");
      return faults;
    });
    expect(faults.map((f) => f.site)).toEqual(["data"]);
    expect(client.text()).toStartWith("HTTP/1.1 500 ");
    expect(rec.termination).toBe("internal");
    expect(rec.error?.kind).toBe("internal");
  });

  test("a FIN before any byte of an answer: 502 `upstream-protocol` (a truncated exchange)", async () => {
    const { client, up, rec } = await awaitingAnswer();
    up.events!.onEnd();
    expect(client.text()).toStartWith("HTTP/1.1 502 ");
    expect(rec.termination).toBe("upstream-protocol");
  });
});

describe("error answers to HEAD have no content (RFC 9110 §9.3.2)", () => {
  test("a HEAD whose upstream resets: 502 head only; a malformed request after an answered HEAD: 400 with its body", async () => {
    const first = session();
    first.client.events!.onData(text.encode("HEAD / HTTP/1.1\r\nHost: w\r\n\r\n"));
    await settle();
    first.upstreams[0]!.events!.onClose(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    const answer = first.client.text();
    expect(answer).toStartWith("HTTP/1.1 502 ");
    expect(answer).toEndWith("\r\n\r\n");
    expect(answer).toMatch(/\r\nContent-Length: [1-9]\d*\r\n/); // what a GET's answer would say

    const second = session();
    second.client.events!.onData(text.encode("HEAD / HTTP/1.1\r\nHost: w\r\n\r\n"));
    await settle();
    second.upstreams[0]!.events!.onData(text.encode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
    second.client.events!.onData(text.encode("GET / HTTP/1.1\r\nHost: w\r\nBad Name: 1\r\n\r\n"));
    const [, error] = second.client.text().split("HTTP/1.1 400 ");
    expect(error).toBeDefined();
    expect(error!.split("\r\n\r\n")[1]!.length).toBeGreaterThan(0); // not taken for an answer to the HEAD
  });
});

describe("error answers to a HEAD whose head cannot be parsed have no content either (RFC 9110 §9.3.2)", () => {
  const answer = async (request: string, limits: Partial<Limits> = {}) => {
    const s = session(limits);
    s.client.events!.onData(text.encode(request));
    await settle();
    return s;
  };
  const contentOf = (reply: string) => reply.slice(reply.indexOf("\r\n\r\n") + 4);

  test("400 (two Host lines), 414, 431: the head only, with the Content-Length a GET's answer has", async () => {
    const cases: Array<[string, string, Partial<Limits>]> = [
      ["Host: a\r\nHost: b\r\n\r\n", "400", {}],
      ["Host: a\r\nX: " + "y".repeat(300) + "\r\n\r\n", "431", { maxHeaderBytes: 256 }],
    ];
    for (const [fields, status, limits] of cases) {
      const head = (await answer(`HEAD / HTTP/1.1\r\n${fields}`, limits)).client.text();
      const get = (await answer(`GET / HTTP/1.1\r\n${fields}`, limits)).client.text();
      expect([status, head.slice(0, 12)]).toEqual([status, `HTTP/1.1 ${status}`]);
      expect([status, contentOf(head)]).toEqual([status, ""]);
      expect(contentOf(get).length).toBeGreaterThan(0);
      expect(head.match(/Content-Length: \d+/)?.[0]).toBe(get.match(/Content-Length: \d+/)?.[0]);
    }
    const long = (await answer("\r\nHEAD /" + "a".repeat(300), { maxRequestLineBytes: 256 })).client.text();
    expect(long).toStartWith("HTTP/1.1 414 ");
    expect(contentOf(long)).toBe("");
    // "head" is another method (methods are case-sensitive): its 400 has its content.
    expect(contentOf((await answer("head / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")).client.text()).length).toBeGreaterThan(0);
  });

  test("408 to a HEAD whose head did not complete in time", async () => {
    const s = await answer("HEAD / HTTP/1.1\r\nHost: a\r\n");
    s.expire();
    const reply = s.client.text();
    expect(reply).toStartWith("HTTP/1.1 408 ");
    expect(contentOf(reply)).toBe("");
  });
});

describe("trailer sections are bounded by --max-header-bytes (RFC 9112 §7.1.2: a header section at the end)", () => {
  const trailer = (bytes: number) => `X-Pad: ${"a".repeat(bytes)}\r\n`;

  test("a request's trailers past the limit: 431, and the upstream reset; under it they go on", async () => {
    const over = session({ maxHeaderBytes: 2048 });
    over.client.events!.onData(text.encode("POST / HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n" + trailer(4096) + "\r\n"));
    await settle();
    expect(over.client.text()).toStartWith("HTTP/1.1 431 ");
    expect(over.rec.error?.kind).toBe("headersTooLarge");
    expect(over.upstreams[0]!.calls).toContain("destroy");

    const under = session({ maxHeaderBytes: 8192 });
    under.client.events!.onData(text.encode("POST / HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n" + trailer(4096) + "\r\n"));
    await settle();
    expect(under.upstreams[0]!.text()).toEndWith(trailer(4096) + "\r\n");
    expect(under.client.text()).toBe("");
  });

  test("a response's trailers past the limit, after its head was sent: the answer is cut, logged as the upstream's fault", async () => {
    const s = session({ maxHeaderBytes: 2048 });
    s.client.events!.onData(text.encode(GET));
    await settle();
    s.upstreams[0]!.events!.onData(text.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n"));
    expect(s.client.text()).toStartWith("HTTP/1.1 200 OK\r\n");
    s.upstreams[0]!.events!.onData(text.encode("0\r\n" + trailer(4096) + "\r\n"));
    expect(s.client.calls).toContain("destroy"); // never a second status line
    expect(s.rec.error?.kind).toBe("upstreamProtocol");
    expect(s.upstreams[0]!.closed).toBe(true);
  });
});
