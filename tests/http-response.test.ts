/**
 * lib/listeners/http-response.ts and clientResponseHead (http-message.ts) without sockets: a
 * ResponseReader fed upstream bytes (whole, byte by byte, and glued to the next response) into a
 * recording sink that decides keep-alive as the session does. The case under test is the chunked
 * response to an HTTP/1.0 request (RFC 9112 §6.1): no Transfer-Encoding, Connection: close, only
 * the chunk-data; every other request/response pair must come out exactly as it does for HTTP/1.1.
 */
import { describe, expect, test } from "bun:test";
import { ERROR_TABLE, type ProxyError } from "../lib/errors.ts";
import { DEFAULT_LIMITS } from "../lib/limits.ts";
import { clientResponseHead } from "../lib/listeners/http-message.ts";
import { ResponseReader, type ResponseSink } from "../lib/listeners/http-response.ts";
import { type BodyFraming, type RequestHead, type ResponseHead, parseRequestHead } from "../lib/protocol/http1.ts";
import { bytes } from "./helpers/http1-vectors.ts";

const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const NEXT = "HTTP/1.1 204 No Content\r\n\r\n";

function request(method: string, version: "1.0" | "1.1"): RequestHead {
  const r = parseRequestHead(bytes(`${method} / HTTP/${version}\r\nHost: a\r\n\r\n`), DEFAULT_LIMITS);
  if (!r.ok) throw new Error("incomplete request head");
  return r.head;
}

interface Outcome {
  /** Everything written to the client (heads and body), Latin-1. */
  client: string;
  keepAlive: boolean | null;
  dechunk: boolean | null;
  /** Bytes after the message (responseDone's extra), or null while not done. */
  extra: string | null;
  failed: number | null;
  /** `started` when the failure happened. */
  startedAtFail: boolean | null;
}

/** Feeds `wire` in pieces of `step` bytes into a reader whose sink decides keep-alive like HttpSession. */
function run(req: RequestHead, wire: string, step = Infinity): Outcome {
  const out: Outcome = { client: "", keepAlive: null, dechunk: null, extra: null, failed: null, startedAtFail: null };
  let reader: ResponseReader;
  const sink: ResponseSink = {
    toClient: (b) => void (out.client += text(b)),
    responseHead(response: ResponseHead, framing: BodyFraming, dechunk: boolean, body: Uint8Array, bodyStart: number, bodyEnd: number) {
      out.dechunk = dechunk;
      out.keepAlive = req.keepAlive && framing.kind !== "close" && !dechunk;
      out.client += text(clientResponseHead(response, req.version, out.keepAlive, body, bodyStart, bodyEnd));
    },
    responseUpgrade: () => {
      throw new Error("no upgrade here");
    },
    responseDone: (extra) => void (out.extra = text(extra)),
    fail(err: ProxyError) {
      out.failed = ERROR_TABLE[err.kind].http;
      out.startedAtFail = reader.started;
    },
  };
  reader = new ResponseReader(req, DEFAULT_LIMITS, sink);
  const all = bytes(wire);
  for (let p = 0; p < all.length && out.extra === null && out.failed === null; p += step) reader.feed(all.subarray(p, Math.min(all.length, p + step)));
  return out;
}

/** A reader whose sink logs each client write, then "<done EXTRA>" or "<fail KIND>". */
function writeLog(req: RequestHead, keepAlive: boolean): { reader: ResponseReader; writes: string[] } {
  const writes: string[] = [];
  const reader = new ResponseReader(req, DEFAULT_LIMITS, {
    toClient: (b) => void writes.push(text(b)),
    responseHead: (r, _framing, _dechunk, body, start, end) => void writes.push(text(clientResponseHead(r, req.version, keepAlive, body, start, end))),
    responseUpgrade: () => {},
    responseDone: (extra) => writes.push(`<done ${text(extra)}>`),
    fail: (err) => writes.push(`<fail ${err.kind}>`),
  });
  return { reader, writes };
}

/** Splits what the client got into its head's field lines and its body. */
function split(client: string): { status: string; fields: string[]; body: string } {
  const end = client.indexOf("\r\n\r\n");
  const [status, ...fields] = client.slice(0, end).split("\r\n");
  return { status: status!, fields: fields.map((f) => f.toLowerCase()), body: client.slice(end + 4) };
}

const CHUNKED_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n";
const CHUNKED_BODY = '5;name="a;b"\r\nhello\r\n1\r\n \r\n6;x\r\nworld!\r\n0;end\r\nX-Sum: 42\r\n\r\n';
const PAYLOAD = "hello world!";
const WAYS: Array<[string, number, string]> = [
  ["whole", Infinity, ""],
  ["byte by byte", 1, ""],
  ["coalesced with the next response", Infinity, NEXT],
];

describe("ResponseReader: a chunked response to an HTTP/1.0 request is de-chunked", () => {
  for (const [way, step, tail] of WAYS) {
    test(`GET, extensions and a trailer [${way}]`, () => {
      const o = run(request("GET", "1.0"), CHUNKED_HEAD + CHUNKED_BODY + tail, step);
      expect(o.failed).toBeNull();
      expect(o.dechunk).toBe(true);
      expect(o.keepAlive).toBe(false);
      expect(o.extra).toBe(tail); // the message ended exactly after the trailer section
      const got = split(o.client);
      expect(got.status).toBe("HTTP/1.1 200 OK");
      expect(got.fields).toContain("connection: close");
      expect(got.fields).toContain("content-type: text/plain");
      expect(got.fields.filter((f) => /^(transfer-encoding|trailer|content-length):/.test(f))).toEqual([]);
      expect(got.body).toBe(PAYLOAD);
    });
    test(`zero-length body "0\\r\\n\\r\\n" [${way}]`, () => {
      const o = run(request("GET", "1.0"), `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${tail}`, step);
      expect(o.extra).toBe(tail);
      expect(split(o.client)).toEqual({ status: "HTTP/1.1 200 OK", fields: ["via: 1.1 sidecar-proxy", "connection: close"], body: "" });
    });
  }

  test("a client that asked for keep-alive still gets Connection: close (closing delimits the body)", () => {
    const req = parseRequestHead(bytes("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"), DEFAULT_LIMITS);
    if (!req.ok) throw new Error("incomplete");
    const o = run(req.head, CHUNKED_HEAD + CHUNKED_BODY);
    expect(o.keepAlive).toBe(false);
    expect(split(o.client).fields).toContain("connection: close");
    expect(split(o.client).fields).not.toContain("connection: keep-alive");
  });

  test("any coding but a final chunked cannot reach an HTTP/1.0 client (RFC 9112 §6.1: no Transfer-Encoding to it): 502, nothing written; to HTTP/1.1 it passes as sent", () => {
    for (const te of ["Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: gzip"]) {
      const wire = `HTTP/1.1 200 OK\r\n${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`;
      const old = run(request("GET", "1.0"), wire);
      expect(old.failed, te).toBe(502);
      expect(old.startedAtFail, te).toBe(false);
      expect(old.client, te).toBe("");
      const got = split(run(request("GET", "1.1"), wire).client);
      expect(got.fields.filter((f) => f.startsWith("transfer-encoding")), te).toEqual(te.toLowerCase().split("\r\n"));
    }
  });

  test("a large chunk arriving in many reads is streamed: each read's chunk-data goes out at once", () => {
    const { reader, writes } = writeLog(request("GET", "1.0"), false);
    reader.feed(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    expect(writes.length).toBe(1); // the head, nothing buffered behind it
    reader.feed(bytes(`10000\r\n${"a".repeat(1000)}`));
    reader.feed(bytes("b".repeat(1000)));
    expect(writes.slice(1)).toEqual(["a".repeat(1000), "b".repeat(1000)]);
  });
});

describe("ResponseReader: malformed chunked bodies to HTTP/1.0 clients fail as before", () => {
  test("bad framing in the same read as the head: 502, nothing written yet", () => {
    for (const step of [Infinity, 1]) {
      const o = run(request("GET", "1.0"), `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n`, step);
      expect(o.failed).toBe(502);
      // Byte by byte, the head is out before the bad octet arrives: the session then cuts.
      expect(o.startedAtFail).toBe(step === 1);
      if (step === Infinity) expect(o.client).toBe("");
    }
  });
  test("bad framing after data was relayed: the failure comes with the response started (cut, no second status)", () => {
    const o = run(request("GET", "1.0"), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5 \r\nworld\r\n0\r\n\r\n", 8);
    expect(o.failed).toBe(502);
    expect(o.startedAtFail).toBe(true);
    expect(o.extra).toBeNull();
  });
});

describe("ResponseReader: everything else is relayed unchanged", () => {
  const cases: Array<[string, RequestHead, string]> = [
    ["HTTP/1.1 GET, chunked", request("GET", "1.1"), CHUNKED_HEAD + CHUNKED_BODY],
    ["HTTP/1.0 GET, Content-Length", request("GET", "1.0"), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
    ["HTTP/1.0 HEAD, chunked head", request("HEAD", "1.0"), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"],
    ["HTTP/1.0 GET, 204", request("GET", "1.0"), "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"],
    ["HTTP/1.1 GET, 204 with Transfer-Encoding and Content-Length", request("GET", "1.1"), "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\nX-Kept: 1\r\n\r\n"],
    ["HTTP/1.0 GET, 304", request("GET", "1.0"), "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"],
  ];
  for (const [name, req, wire] of cases) {
    test(`${name}: the body bytes as received, no de-chunking (no chunked coding named to an HTTP/1.0 client)`, () => {
      for (const [, step, tail] of WAYS) {
        const o = run(req, wire + tail, step);
        expect(o.dechunk).toBe(false);
        expect(o.extra).toBe(tail);
        const head = wire.slice(0, wire.indexOf("\r\n\r\n") + 4);
        expect(split(o.client).body).toBe(wire.slice(head.length));
        const fields = split(o.client).fields;
        // RFC 9112 §6.1: an HTTP/1.0 client is never sent the chunked coding, even in a head without a body.
        if (wire.includes("Transfer-Encoding") && req.version === "1.1" && !wire.startsWith("HTTP/1.1 204")) expect(fields).toContain("transfer-encoding: chunked");
        expect(fields).toContain("via: 1.1 sidecar-proxy");
        if (wire.includes("X-Kept")) expect(fields).toContain("x-kept: 1");
        if (req.version === "1.0") expect(fields.some((f) => f.startsWith("transfer-encoding"))).toBe(false);
        // A 204 never names a body length or coding (RFC 9112 §6.1, RFC 9110 §8.6), for any client.
        if (wire.startsWith("HTTP/1.1 204")) expect(fields.some((f) => f.startsWith("transfer-encoding") || f.startsWith("content-length"))).toBe(false);
      }
    });
  }
});

describe("ResponseReader: interim responses", () => {
  const WIRE = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (const [way, step] of [["whole", Infinity], ["byte by byte", 1]] as const) {
    test(`an HTTP/1.1 client gets 103 and 100 before the final response (${way})`, () => {
      const out = run(request("GET", "1.1"), WIRE, step);
      expect(out.client.startsWith("HTTP/1.1 103 Early Hints\r\n")).toBe(true);
      expect(out.client).toContain("\r\n\r\nHTTP/1.1 100 Continue\r\n");
      expect(split(out.client.slice(out.client.lastIndexOf("HTTP/1.1 200"))).body).toBe("ok");
      expect(out.extra).toBe("");
    });
    test(`an HTTP/1.0 client gets only the final response: no 1xx (RFC 9110 §15.2) (${way})`, () => {
      const out = run(request("GET", "1.0"), WIRE, step);
      expect(out.client.startsWith("HTTP/1.1 200 OK\r\n")).toBe(true);
      expect(out.client).not.toContain(" 103 ");
      expect(out.client).not.toContain(" 100 ");
      expect(split(out.client).body).toBe("ok");
      expect(out.extra).toBe("");
    });
  }
});

describe("ResponseReader: writes", () => {
  test("a small response read whole goes to the client in one write, head and body together", () => {
    const { reader, writes } = writeLog(request("GET", "1.1"), true);
    reader.feed(bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP"));
    expect(writes).toEqual(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 sidecar-proxy\r\n\r\nhello", "<done HTTP>"]);
  });
});
