/**
 * HTTP/1.1 wire vectors (lib/protocol/http1.ts, http-body.ts), valid and invalid, each fed three
 * ways as h11 does: whole, one byte at a time into a growing buffer (as a driver accumulates),
 * and coalesced with the next message (pipelining: the head and body must end exactly where
 * they do). Strings are Latin-1: one char per octet.
 */
import { describe, expect, test } from "bun:test";
import { ERROR_TABLE, ProxyError } from "../lib/errors.ts";
import { DEFAULT_LIMITS } from "../lib/limits.ts";
import { BodyDecoder, joinSpans } from "../lib/protocol/http-body.ts";
import {
  errorResponse,
  HeadScan,
  parseRequestHead,
  parseResponseHead,
  responseFraming,
  serializeRequestHead,
  serializeResponseHead,
  type BodyFraming,
  type HeadLimits,
  type HeadResult,
  type RequestHead,
  type ResponseHead,
} from "../lib/protocol/http1.ts";
import { parseContentLength } from "../lib/protocol/http1-framing.ts";
import { BODY_VECTORS, bytes, REQUEST_VECTORS, RESPONSE_VECTORS, type HeadVector } from "./helpers/http1-vectors.ts";

const text = (b: Uint8Array): string => String.fromCharCode(...b);
const NEXT_REQUEST = "GET /next HTTP/1.1\r\nHost: n\r\n\r\n";
const NEXT_RESPONSE = "HTTP/1.1 204 No Content\r\n\r\n";

function statusOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ProxyError)) throw err;
    return ERROR_TABLE[err.kind].http;
  }
  return 0;
}

type Parse<T> = (buf: Uint8Array, limits: HeadLimits, scan?: HeadScan) => HeadResult<T>;

/** Feeds a growing buffer one byte at a time; returns the result and how many bytes it took. */
function byteByByte<T>(parse: Parse<T>, raw: Uint8Array, limits: HeadLimits): { r: HeadResult<T>; at: number } {
  const scan = new HeadScan();
  for (let i = 1; i <= raw.length; i++) {
    const r = parse(raw.subarray(0, i), limits, scan);
    if (r.ok) return { r, at: i };
  }
  return { r: { ok: false, needMore: true }, at: raw.length };
}

/** Decodes body bytes from `from`, one byte per feed; returns bytes used. */
function decodeBytewise(dec: BodyDecoder, raw: Uint8Array, from: number): number {
  let used = 0;
  for (let i = from; i < raw.length && !dec.done; i++) used += dec.feed(raw.subarray(i, i + 1)).used;
  return used;
}

/**
 * Feeds raw[from..] in pieces of `step` bytes (Infinity: one feed) asking for data spans, as
 * ResponseReader does when de-chunking; returns bytes used and the content (Latin-1).
 */
function decodeData(dec: BodyDecoder, raw: Uint8Array, from: number, step: number): { used: number; data: string } {
  let used = 0;
  let data = "";
  const spans: number[] = [];
  for (let p = from; p < raw.length && !dec.done; p += step) {
    spans.length = 0;
    const piece = raw.subarray(0, Math.min(raw.length, p + step)); // offsets into a buffer that starts before `p`
    used += dec.feed(piece, p, spans).used;
    for (let i = 0; i < spans.length; i += 2) expect(spans[i]! >= p && spans[i]! < spans[i + 1]! && spans[i + 1]! <= piece.length).toBe(true);
    data += text(joinSpans(piece, spans));
  }
  return { used, data };
}

function headSuite<T extends RequestHead | ResponseHead>(
  label: string,
  vectors: readonly HeadVector<T>[],
  parse: Parse<T>,
  next: string,
  framingOf: (v: HeadVector<T>, head: T) => BodyFraming,
): void {
  describe(label, () => {
    for (const v of vectors) {
      const limits = v.limits ?? DEFAULT_LIMITS;
      const body = v.body ?? "";
      const opts = { response: label.startsWith("response") };
      if (v.status !== undefined) {
        const status = v.status;
        test(`${v.name} -> ${status} [whole]`, () => expect(statusOf(() => parse(bytes(v.head), limits))).toBe(status));
        test(`${v.name} -> ${status} [byte by byte]`, () => expect(statusOf(() => byteByByte(parse, bytes(v.head), limits))).toBe(status));
        test(`${v.name} -> ${status} [coalesced]`, () => expect(statusOf(() => parse(bytes(v.head + next), limits))).toBe(status));
        continue;
      }
      test(`${v.name} [whole]`, () => {
        const raw = bytes(v.head + body);
        const r = parse(raw, limits);
        if (!r.ok) throw new Error("needMore on a whole head");
        expect(r.consumed).toBe(v.head.length);
        v.check?.(r.head);
        const framing = framingOf(v, r.head);
        const dec = new BodyDecoder(framing, opts);
        const { used } = dec.feed(raw, r.consumed);
        expect(used).toBe(body.length);
        if (framing.kind === "close") dec.finish();
        expect(dec.done).toBe(true);
      });
      test(`${v.name} [byte by byte]`, () => {
        const raw = bytes(v.head + body);
        const { r, at } = byteByByte(parse, raw, limits);
        if (!r.ok) throw new Error("never completed");
        expect(at).toBe(v.head.length);
        expect(r.consumed).toBe(v.head.length);
        v.check?.(r.head);
        const framing = framingOf(v, r.head);
        const dec = new BodyDecoder(framing, opts);
        expect(decodeBytewise(dec, raw, r.consumed)).toBe(body.length);
        if (framing.kind === "close") dec.finish();
        expect(dec.done).toBe(true);
      });
      test(`${v.name} [coalesced]`, () => {
        const raw = bytes(v.head + body + next);
        const r = parse(raw, limits);
        if (!r.ok) throw new Error("needMore on a whole head");
        expect(r.consumed).toBe(v.head.length);
        const framing = framingOf(v, r.head);
        const { used } = new BodyDecoder(framing, opts).feed(raw, r.consumed);
        if (framing.kind === "close") return void expect(used).toBe(raw.length - r.consumed); // all of it is body
        expect(used).toBe(body.length);
        const after = parse(raw.subarray(r.consumed + used), limits);
        expect(after.ok && after.consumed).toBe(next.length);
      });
    }
  });
}

headSuite("request heads", REQUEST_VECTORS, parseRequestHead, NEXT_REQUEST, (_v, h) => h.framing);
headSuite("response heads", RESPONSE_VECTORS, parseResponseHead, NEXT_RESPONSE, (v, h) =>
  responseFraming({ method: v.method ?? "GET" }, h),
);

describe("request-line errors name what is wrong", () => {
  const messageOf = (head: string): string => {
    try {
      parseRequestHead(bytes(head), DEFAULT_LIMITS);
    } catch (err) {
      if (err instanceof ProxyError) return err.message;
      throw err;
    }
    return "parsed";
  };
  test("a line without its three parts (a typo, HTTP/0.9) says so; a bad token names the token", () => {
    const incomplete = "request line is not method SP request-target SP HTTP-version";
    expect(messageOf("GARBAGE\r\n\r\n")).toBe(incomplete);
    expect(messageOf("GET /\r\n\r\n")).toBe(incomplete);
    expect(messageOf("G(T / HTTP/1.1\r\nHost: a\r\n\r\n")).toBe("invalid method token");
    expect(messageOf("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n")).toBe("malformed HTTP-version");
    expect(messageOf("GET / HTTP/2.0\r\nHost: a\r\n\r\n")).toBe("HTTP/2.0 (only HTTP/1.x)");
    // Answered at the line's end: the rest of the head cannot make it a request (it was a 408
    // once the header deadline passed).
    expect(messageOf("GET /\r\n")).toBe(incomplete);
    expect(messageOf("GET http://127.0.0.1:1/x\r\n")).toBe(incomplete);
    expect(messageOf("GET / HTTP/1.1\r\n")).toBe("parsed"); // incomplete, not refused
    expect(messageOf("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n")).toBe("invalid request-target");
    expect(messageOf("GET / HTTP/1.1\r\nHost: a\r\n\r\n")).toBe("parsed");
  });

  test("a 501 for a transfer coding names only the coding's name, a token (the message is the error body: client input)", () => {
    const te = (value: string) => messageOf(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${value}\r\n\r\n`);
    expect(te("gzip, chunked")).toBe("transfer coding gzip not supported");
    expect(te('gzip;x="<b>", chunked')).toBe("transfer coding gzip not supported");
    expect(te("<script>alert(1)</script>, chunked")).toBe("invalid transfer coding in Transfer-Encoding");
  });
});

describe("body decoder", () => {
  test("completedBy: whether bytes would end the body, from any point, the decoder left as it was; bad framing is false", () => {
    for (const v of BODY_VECTORS) {
      if (v.status !== undefined) {
        expect(new BodyDecoder(v.framing, { response: v.response ?? false }).completedBy(bytes(v.input)), v.name).toBe(false);
        continue;
      }
      const raw = bytes(v.input);
      const used = v.used ?? v.input.length;
      for (const cut of [0, 1, used >> 1, used - 1]) {
        if (cut < 0 || cut >= used) continue;
        const dec = new BodyDecoder(v.framing, { response: v.response ?? false });
        dec.feed(raw.subarray(0, cut));
        const state = dec.state;
        expect(dec.completedBy(raw.subarray(cut, used - 1 >= cut ? used - 1 : cut)), `${v.name} @${cut} short`).toBe(used - 1 < cut);
        expect(dec.completedBy(raw.subarray(cut)), `${v.name} @${cut}`).toBe(true);
        expect(dec.state).toBe(state);
        expect(dec.feed(raw.subarray(cut)).done).toBe(true); // unchanged: it still reads the rest itself
      }
    }
  });

  for (const v of BODY_VECTORS) {
    const used = v.used ?? v.input.length;
    const opts = { response: v.response ?? false };
    const tail = "GET /next HTTP/1.1\r\n\r\n";
    if (v.status !== undefined) {
      const status = v.status;
      test(`${v.name} -> ${status} [whole]`, () => expect(statusOf(() => new BodyDecoder(v.framing, opts).feed(bytes(v.input)))).toBe(status));
      test(`${v.name} -> ${status} [byte by byte]`, () =>
        expect(statusOf(() => decodeBytewise(new BodyDecoder(v.framing, opts), bytes(v.input), 0))).toBe(status));
      test(`${v.name} -> ${status} [coalesced]`, () =>
        expect(statusOf(() => new BodyDecoder(v.framing, opts).feed(bytes(v.input + tail)))).toBe(status));
      continue;
    }
    test(`${v.name} [whole]`, () => {
      const dec = new BodyDecoder(v.framing, opts);
      expect(dec.feed(bytes(v.input))).toEqual({ used, done: true });
      expect(dec.done).toBe(true);
    });
    test(`${v.name} [byte by byte]`, () => {
      const dec = new BodyDecoder(v.framing, opts);
      expect(decodeBytewise(dec, bytes(v.input), 0)).toBe(used);
      expect(dec.done).toBe(true);
    });
    test(`${v.name} [coalesced]`, () => {
      const raw = bytes(v.input + tail);
      const dec = new BodyDecoder(v.framing, opts);
      expect(dec.feed(raw, 0)).toEqual({ used, done: true });
      expect(dec.feed(raw, used)).toEqual({ used: 0, done: true });
    });
    // The content without framing, as relayed to an HTTP/1.0 client (data spans).
    const data = v.data ?? v.input.slice(0, used);
    const prefix = "HTTP/1.1 200 OK\r\n\r\n"; // spans are offsets into the whole buffer, head included
    test(`${v.name} data [whole]`, () => {
      expect(decodeData(new BodyDecoder(v.framing, opts), bytes(prefix + v.input), prefix.length, Infinity)).toEqual({ used, data });
    });
    test(`${v.name} data [byte by byte]`, () => {
      const dec = new BodyDecoder(v.framing, opts);
      expect(decodeData(dec, bytes(prefix + v.input), prefix.length, 1)).toEqual({ used, data });
      expect(dec.done).toBe(true);
    });
    test(`${v.name} data [coalesced]`, () => {
      const dec = new BodyDecoder(v.framing, opts);
      expect(decodeData(dec, bytes(prefix + v.input + tail), prefix.length, Infinity)).toEqual({ used, data });
      expect(dec.done).toBe(true);
    });
  }

  test("malformed chunked bodies fail the same with data spans asked for", () => {
    for (const v of BODY_VECTORS.filter((x) => x.status !== undefined)) {
      const opts = { response: v.response ?? false };
      for (const step of [1, 3, Infinity]) {
        expect(statusOf(() => decodeData(new BodyDecoder(v.framing, opts), bytes(v.input), 0, step)), `${v.name}, step ${step}`).toBe(v.status!);
      }
    }
  });
  test("joinSpans: nothing, one view without a copy, several spans in one buffer", () => {
    const buf = bytes("3\r\nabc\r\n2;x\r\nde\r\n");
    expect(joinSpans(buf, []).byteLength).toBe(0);
    const one = joinSpans(buf, [3, 6]);
    expect(text(one)).toBe("abc");
    expect(one.buffer).toBe(buf.buffer);
    const spans: number[] = [];
    expect(new BodyDecoder({ kind: "chunked" }).feed(buf, 0, spans)).toEqual({ used: buf.length, done: false });
    expect(spans).toEqual([3, 6, 13, 15]);
    expect(text(joinSpans(buf, spans))).toBe("abcde");
  });

  test("read-until-close takes everything and ends only at EOF", () => {
    const dec = new BodyDecoder({ kind: "close" }, { response: true });
    expect(dec.feed(bytes("abc"))).toEqual({ used: 3, done: false });
    expect(dec.feed(bytes("HTTP/1.1 200 OK\r\n\r\n"))).toEqual({ used: 19, done: false });
    dec.finish();
    expect(dec.done).toBe(true);
  });
  test("EOF inside a length or chunked body is an error of the right side", () => {
    const req = new BodyDecoder({ kind: "length", length: 5 });
    req.feed(bytes("abc"));
    expect(statusOf(() => req.finish())).toBe(400);
    const res = new BodyDecoder({ kind: "chunked" }, { response: true });
    res.feed(bytes("5\r\nab"));
    expect(statusOf(() => res.finish())).toBe(502);
  });
  test("feed honours offset and tolerates empty input", () => {
    const dec = new BodyDecoder({ kind: "length", length: 2 });
    expect(dec.feed(bytes("xxab"), 2)).toEqual({ used: 2, done: true });
    expect(new BodyDecoder({ kind: "chunked" }).feed(new Uint8Array(0))).toEqual({ used: 0, done: false });
  });
  test("trailer section over the limit is 431 on a request, 502 on a response", () => {
    const input = bytes(`0\r\nX: ${"a".repeat(100)}\r\n\r\n`);
    expect(statusOf(() => new BodyDecoder({ kind: "chunked" }, { maxTrailerBytes: 50 }).feed(input))).toBe(431);
    expect(statusOf(() => new BodyDecoder({ kind: "chunked" }, { maxTrailerBytes: 50, response: true }).feed(input))).toBe(502);
  });
});

describe("Content-Length numbers (RFC 9110 §8.6)", () => {
  test("1*DIGIT up to 2^53-1, leading zeros allowed; nothing else", () => {
    const cases: Array<[string, number | null]> = [
      ["0", 0],
      ["007", 7],
      ["9007199254740991", 9007199254740991], // 2^53-1, the largest accepted
      ["9007199254740992", null], // 2^53
      ["9007199254740993", null], // rounds to 2^53 in a double
      ["9999999999999999", null],
      ["00000000000000001", null], // 17 digits
      ["", null],
      ["1e3", null],
      [" 1", null],
      ["-1", null],
    ];
    expect(cases.map(([v]) => parseContentLength(v))).toEqual(cases.map(([, n]) => n));
  });
});

describe("response framing (RFC 9112 §6.3)", () => {
  const head = (s: string): ResponseHead => {
    const r = parseResponseHead(bytes(s), DEFAULT_LIMITS);
    if (!r.ok) throw new Error("incomplete");
    return r.head;
  };
  const cases: [string, string, BodyFraming["kind"]][] = [
    ["HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "none"],
    ["HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "none"],
    ["GET", "HTTP/1.1 100 Continue\r\n\r\n", "none"],
    ["GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "none"],
    ["GET", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", "none"],
    ["GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", "none"],
    ["CONNECT", "HTTP/1.1 200 Connection established\r\n\r\n", "none"],
    ["CONNECT", "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n", "length"],
    ["GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "length"],
    ["GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked"],
    ["GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "close"],
    ["GET", "HTTP/1.0 200 OK\r\n\r\n", "close"],
  ];
  for (const [method, raw, kind] of cases) {
    test(`${method} ${raw.split("\r\n")[0]} -> ${kind}`, () => expect(responseFraming({ method }, head(raw)).kind).toBe(kind));
  }
});

describe("serialization", () => {
  test("a parsed request head serializes back byte for byte (obs-text kept)", () => {
    const raw = "GET /a?b HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9 au lait\r\nAccept: */*\r\n\r\n";
    const r = parseRequestHead(bytes(raw), DEFAULT_LIMITS);
    if (!r.ok) throw new Error("incomplete");
    expect(text(serializeRequestHead(r.head.method, r.head.target, r.head.version, r.head.headers))).toBe(raw);
    expect(text(serializeRequestHead("GET", "/", "HTTP/1.0", []))).toBe("GET / HTTP/1.0\r\n\r\n");
  });
  test("response head", () => {
    expect(text(serializeResponseHead(200, "OK", [{ name: "A", value: "b" }]))).toBe("HTTP/1.1 200 OK\r\nA: b\r\n\r\n");
  });
  test("refuses header injection and invalid names (internal error, a bug)", () => {
    const kinds = [
      () => serializeResponseHead(200, "OK", [{ name: "A", value: "b\r\nX: y" }]),
      () => serializeResponseHead(200, "OK\r\n", []),
      () => serializeResponseHead(200, "OK", [{ name: "A B", value: "b" }]),
      () => serializeResponseHead(200, "OK", [{ name: "A", value: "\u20ac" }]),
      () => serializeRequestHead("GET", "/a b", "1.1", []),
      () => serializeResponseHead(1000, "x", []),
    ].map((fn) => statusOf(fn));
    expect(kinds).toEqual([500, 500, 500, 500, 500, 500]);
  });
  test("errorResponse has the exact SPEC §4 shape", () => {
    expect(text(errorResponse(407, "proxy authentication required", [{ name: "Proxy-Authenticate", value: 'Basic realm="p"' }]))).toBe(
      "HTTP/1.1 407 Proxy Authentication Required\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
        'X-Content-Type-Options: nosniff\r\nContent-Length: 30\r\nProxy-Authenticate: Basic realm="p"\r\n\r\nproxy authentication required\n',
    );
    const r = parseResponseHead(errorResponse(502, "d\u00e9j\u00e0"), DEFAULT_LIMITS);
    expect(r.ok && r.head.headers[3]!.value).toBe("7"); // UTF-8 body length
  });
});

describe("incremental scanning", () => {
  test("a HeadScan resets after a head, so the next message can reuse it", () => {
    const scan = new HeadScan();
    const a = parseRequestHead(bytes("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), DEFAULT_LIMITS, scan);
    const b = parseRequestHead(bytes("GET /b HTTP/1.1\r\nHo"), DEFAULT_LIMITS, scan);
    const c = parseRequestHead(bytes("GET /b HTTP/1.1\r\nHost: y\r\n\r\n"), DEFAULT_LIMITS, scan);
    expect([a.ok && a.head.target, b.ok, c.ok && c.head.target]).toEqual(["/a", false, "/b"]);
  });
  test("a full 32 KiB header section byte by byte stays linear", () => {
    const fields = Array.from({ length: 90 }, (_, i) => `X-F${i}: ${"v".repeat(340)}\r\n`).join("");
    const text = `GET / HTTP/1.1\r\nHost: x\r\n${fields}\r\n`;
    // Counts the octets the scan's line search (indexOf) may look at, instead of timing it: a
    // scan that searched each longer prefix from the start would look at ~n^2/2 of them.
    class CountedBytes extends Uint8Array {
      static examined = 0;
      override indexOf(value: number, from = 0): number {
        CountedBytes.examined += this.length - from;
        return super.indexOf(value, from);
      }
    }
    const raw = new CountedBytes(bytes(text));
    const { r, at } = byteByByte(parseRequestHead, raw, DEFAULT_LIMITS);
    expect(r.ok && at).toBe(raw.length);
    expect(raw.subarray(0, 1)).toBeInstanceOf(CountedBytes); // the prefixes fed were counted
    expect(CountedBytes.examined).toBeLessThan(3 * raw.length);
  });
});
