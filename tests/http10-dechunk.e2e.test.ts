/**
 * HTTP/1.0 clients never receive a chunked response (RFC 9112 §6.1), end to end through a real
 * proxy process. We ask every upstream in HTTP/1.1 (RFC 9110 §6.2), so an origin may answer
 * chunked; as nginx does, a 1.0 client then gets the head without Transfer-Encoding (and without
 * Trailer), `Connection: close`, only the chunk-data, and a FIN once it is all flushed. HTTP/1.1
 * clients on the same setup still get the chunked bytes exactly as the origin sent them.
 *
 * The origin is a scripted raw origin on loopback (tests/helpers/origins.ts) answering every
 * request head with the same chunked response: chunks of 1 byte to 64 KiB, a chunk extension, a
 * last-chunk extension and a trailer. Raw clients (reverse listener, forward listener with
 * absolute-form) and curl --http1.0 -x (forward).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mustRun, requireTool } from "./helpers/clients.ts";
import { RawClient, patternChunk } from "./helpers/net.ts";
import { type RawOrigin, type RawOriginConn, awaitResponses, headCount, rawOrigin, responsesOf } from "./helpers/origins.ts";
import { type LogLine, type RunningProxy, killAll, startProxy } from "./helpers/proxy.ts";

/** Binary on purpose, with CRLF and "0\r\n\r\n" look-alikes inside the data. */
const PAYLOAD = Buffer.concat([Buffer.from("0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", "latin1"), patternChunk(31, 200_000)]);
/** The origin's chunked body: uneven chunk sizes, extensions, a trailer section. */
const CHUNKED_BODY = chunkedBody(PAYLOAD, [1, 25, 64 * 1024, 1000]);
const RESPONSE = Buffer.concat([
  Buffer.from("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n", "latin1"),
  CHUNKED_BODY,
]);

function chunkedBody(payload: Buffer, sizes: number[]): Buffer {
  const parts: Buffer[] = [];
  for (let p = 0, i = 0; p < payload.length; i++) {
    const n = Math.min(payload.length - p, sizes[i % sizes.length]!);
    const ext = i === 1 ? ';name="a;b"' : i === 2 ? " ;x" : "";
    parts.push(Buffer.from(`${n.toString(16)}${ext}\r\n`, "latin1"), payload.subarray(p, p + n), Buffer.from("\r\n", "latin1"));
    p += n;
  }
  parts.push(Buffer.from("0;end\r\nX-Checksum: 1234\r\n\r\n", "latin1"));
  return Buffer.concat(parts);
}

/** Answers every bodiless request head with RESPONSE, keeping the connection (as an origin would). */
function answerChunked(conn: RawOriginConn): void {
  const heads = headCount(conn.received);
  while (conn.answered < heads) {
    conn.answered++;
    conn.write(RESPONSE);
  }
}

let origin: RawOrigin;
let rev: RunningProxy;
let fwd: RunningProxy;
let work: string;

beforeAll(async () => {
  origin = rawOrigin(answerChunked);
  rev = await startProxy(["--proxy-type", "reverse", "--proxy-protocol", "http", "--proxy-host", "127.0.0.1", "--proxy-port", String(origin.port)]);
  fwd = await startProxy(["--proxy-type", "forward", "--proxy-protocol", "http"]);
  work = mkdtempSync(join(tmpdir(), "sidecar-dechunk-"));
}, 60_000);

afterAll(() => {
  killAll();
  origin?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The request line for each listener: origin-form to the reverse one, absolute-form to the forward one. */
const LISTENERS: Array<{ name: string; proxy: () => RunningProxy; port: () => number; target: () => string }> = [
  { name: "reverse", proxy: () => rev, port: () => rev.ports.reverse!, target: () => "/chunky" },
  { name: "forward (absolute-form)", proxy: () => fwd, port: () => fwd.ports.forward!, target: () => origin.url("/chunky") },
];

function connectionLog(p: RunningProxy, since: number): Promise<LogLine> {
  return p.waitForLog((l) => l.msg === "connection" && p.logs.indexOf(l) >= since, 10_000, "connection log line");
}

for (const l of LISTENERS) {
  describe(`${l.name} listener`, () => {
    // With Connection: keep-alive too: closing is what delimits the de-chunked body.
    for (const fields of ["", "Connection: keep-alive\r\n"]) {
      test(`HTTP/1.0 client${fields ? " asking for keep-alive" : ""}: no Transfer-Encoding, Connection: close, exactly the payload, then EOF`, async () => {
        const since = l.proxy().logs.length;
        const c = await RawClient.connect(l.port());
        await c.write(`GET ${l.target()} HTTP/1.0\r\nHost: 127.0.0.1:${origin.port}\r\n${fields}\r\n`);
        await c.waitFor(() => c.gotFin || c.closed, 20_000, "the proxy to end the response with a FIN");
        expect(c.closeError).toBeUndefined();
        expect(c.gotFin).toBe(true); // a clean end, not a reset
        const x = responsesOf(c);
        expect(x.finals.length).toBe(1);
        const r = x.finals[0]!;
        expect(r.status).toBe(200);
        expect(r.header("transfer-encoding")).toBeUndefined();
        expect(r.header("trailer")).toBeUndefined();
        expect(r.header("content-length")).toBeUndefined();
        expect(r.header("connection")?.toLowerCase()).toBe("close");
        expect(r.header("content-type")).toBe("application/octet-stream");
        // Delimited by the close: everything after the head is body, byte for byte the payload.
        expect(r.complete).toBe(true);
        expect(r.body.length).toBe(PAYLOAD.length);
        expect(r.body.equals(PAYLOAD)).toBe(true);
        c.close();
        const line = await connectionLog(l.proxy(), since);
        expect(line.termination).toBe("server-fin");
        expect(line.error).toBeUndefined();
      });
    }

    test("HTTP/1.1 client: the chunked bytes unchanged, and the connection stays open", async () => {
      const c = await RawClient.connect(l.port());
      await c.write(`GET ${l.target()} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
      const x = await awaitResponses(c, 1);
      expect(x.ended).toBe(false);
      const r = x.finals[0]!;
      expect(r.complete).toBe(true);
      expect(r.header("transfer-encoding")).toBe("chunked");
      expect(r.header("trailer")).toBe("X-Checksum");
      expect(r.body.equals(PAYLOAD)).toBe(true);
      const raw = c.bytes();
      const bodyStart = Buffer.from(raw).indexOf("\r\n\r\n") + 4;
      expect(Buffer.from(raw.subarray(bodyStart)).equals(CHUNKED_BODY)).toBe(true); // extensions and trailer included
      c.close();
    });
  });
}

describe("curl --http1.0 -x (forward)", () => {
  test("receives the exact payload, and saw no chunked coding", async () => {
    requireTool("curl", 'the "curl" package');
    const out = join(work, "body.bin");
    const headers = join(work, "headers.txt");
    const proxy = `http://127.0.0.1:${fwd.ports.forward}`;
    // -q first: ignore any ~/.curlrc. --raw: curl must not decode anything itself.
    await mustRun(["curl", "-q", "-sS", "-g", "--max-time", "60", "--http1.0", "--raw", "-x", proxy, "-o", out, "-D", headers, origin.url("/")]);
    const head = readFileSync(headers, "latin1").toLowerCase();
    expect(head).toStartWith("http/1.1 200");
    expect(head).not.toContain("transfer-encoding");
    expect(head).toContain("connection: close");
    expect(readFileSync(out).equals(PAYLOAD)).toBe(true);
  });
});
