/**
 * Bounded, deterministic fuzzing of the HTTP/1.1 machines (fixed-seed PRNG). Inputs are random
 * bytes or mutations of the wire vectors, pushed through a small driver loop that buffers like a
 * session does (head -> body -> next head). Properties:
 * - nothing but a ProxyError with a known kind is ever thrown (no TypeError, RangeError, ...);
 * - the driver always terminates (a step either consumes bytes or reports "need more");
 * - the outcome (heads, body sizes, final state or error kind) does not depend on how the input
 *   was split, nor on whether a HeadScan is reused;
 * - a parsed request head serializes to bytes that parse back to the same head;
 * - de-chunking (BodyDecoder data spans, for HTTP/1.0 clients) yields exactly the payload that was
 *   encoded, however the chunks and the feeds are cut, and asking for spans changes no outcome.
 */
import { describe, expect, test } from "bun:test";
import { ERROR_TABLE, ProxyError } from "../lib/errors.ts";
import { DEFAULT_LIMITS } from "../lib/limits.ts";
import { BodyDecoder, joinSpans } from "../lib/protocol/http-body.ts";
import {
  HeadScan,
  parseRequestHead,
  parseResponseHead,
  responseFraming,
  serializeRequestHead,
  type BodyFraming,
  type HeadLimits,
} from "../lib/protocol/http1.ts";
import { fuzzIterations, fuzzSeed, prng } from "./helpers/fuzz.ts";
import { BODY_VECTORS, bytes, REQUEST_VECTORS, RESPONSE_VECTORS, SMALL } from "./helpers/http1-vectors.ts";

const ITERATIONS = fuzzIterations(20_000);
const SEED = fuzzSeed(0x5eed_1234);

const INTERESTING = [
  "\r\n", "\n", "\r", " ", "\t", ":", ",", ";", '"', "\\", "0", "f", "\x00", "\x7f", "\x80", "\xff",
  "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n", "Host: h\r\n", "Connection: close\r\n",
  "HTTP/1.1", "\r\n\r\n", "0\r\n\r\n", "ffffffffffffffff", "CONNECT a:1", "http://a/",
];
const ALPHABET = "GET / HTTP/1.1\r\n:;,=\"0123456789abcdefABCDEF\t\x00\x80\xffHost";

/** Valid vectors three times over, so mutations often stay close to a valid message. */
const seedsOf = (vs: readonly { head: string; body?: string; status?: number }[]): string[] => {
  const all = vs.map((v) => v.head + (v.body ?? ""));
  const valid = vs.filter((v) => v.status === undefined).map((v) => v.head + (v.body ?? ""));
  return [...all, ...valid, ...valid, ...valid];
};
const requestSeeds = seedsOf(REQUEST_VECTORS);
const responseSeeds = seedsOf(RESPONSE_VECTORS);
const bodySeeds = BODY_VECTORS.filter((v) => v.framing.kind === "chunked").map((v) => v.input);

function mutate(rand: () => number, seeds: readonly string[]): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  if (rand() < 0.1) {
    let s = "";
    for (let n = Math.floor(rand() * 200); n > 0; n--) s += rand() < 0.5 ? pick([...ALPHABET]) : String.fromCharCode(Math.floor(rand() * 256));
    return s;
  }
  let s = pick(seeds);
  for (let m = 1 + Math.floor(rand() * rand() * 4); m > 0; m--) {
    const at = Math.floor(rand() * (s.length + 1));
    switch (Math.floor(rand() * 6)) {
      case 0: s = s.slice(0, at) + String.fromCharCode(Math.floor(rand() * 256)) + s.slice(at + 1); break;
      case 1: s = s.slice(0, at) + pick(INTERESTING) + s.slice(at); break;
      case 2: s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rand() * 8)); break;
      case 3: s = s.slice(0, at) + s.slice(at, at + Math.floor(rand() * 32)) + s.slice(at); break;
      case 4: s = s.slice(0, at); break;
      default: s = s + pick(seeds); break; // pipelining
    }
  }
  return s;
}

/** Random split of n bytes into pieces (small pieces, sometimes single bytes). */
function splits(rand: () => number, n: number): number[] {
  const out: number[] = [];
  const max = Math.max(16, n >> 3);
  for (let p = 0; p < n; ) {
    p = Math.min(n, p + 1 + Math.floor(rand() * (rand() < 0.3 ? 1 : max)));
    out.push(p);
  }
  return out;
}

const LOOKALIKES = "\r\n0;aF:";

/** A random payload: usually small, sometimes empty, sometimes several KiB; every octet value. */
function randomPayload(rand: () => number): Uint8Array {
  const n = rand() < 0.1 ? 0 : Math.floor(rand() * (rand() < 0.2 ? 8192 : 300));
  const out = new Uint8Array(n);
  // Framing look-alikes are more interesting than noise: CR, LF, "0", ";", ":" and hex digits.
  for (let i = 0; i < n; i++) out[i] = rand() < 0.3 ? LOOKALIKES.charCodeAt(Math.floor(rand() * LOOKALIKES.length)) : Math.floor(rand() * 256);
  return out;
}

const EXTENSIONS = ["", "", ";a", ";a=b", " ;q=\"x\\\"y;\"", "\t; n = 1 ;m", ";ext=\"\""];
const TRAILERS = ["", "", "X-Sum: 1\r\n", "A: b\r\nEmpty:\r\n"];

/**
 * A random valid chunked encoding of `payload` (Latin-1): chunk sizes from 1 byte to all of it,
 * hex in either case with leading zeros at times, chunk extensions, a trailer section at times.
 */
function encodeChunked(rand: () => number, payload: Uint8Array): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  let out = "";
  for (let p = 0; p < payload.length; ) {
    const n = Math.min(payload.length - p, 1 + Math.floor(rand() * (rand() < 0.3 ? 4 : payload.length)));
    const hex = n.toString(16);
    out += `${rand() < 0.2 ? "00" : ""}${rand() < 0.5 ? hex : hex.toUpperCase()}${pick(EXTENSIONS)}\r\n`;
    out += String.fromCharCode(...payload.subarray(p, p + n)) + "\r\n";
    p += n;
  }
  return `${out}0${pick(EXTENSIONS)}\r\n${pick(TRAILERS)}\r\n`;
}

/** Decodes `input` fed as growing prefixes cut at `cuts`, asking for data spans, as ResponseReader does. */
function dechunk(input: Uint8Array, cuts: readonly number[], opts: { response: boolean; maxTrailerBytes?: number }): { outcome: string; data: Uint8Array } {
  const dec = new BodyDecoder({ kind: "chunked" }, opts);
  const spans: number[] = [];
  let data: Uint8Array = new Uint8Array(0);
  let used = 0;
  let from = 0;
  try {
    for (const cut of cuts) {
      spans.length = 0;
      const piece = input.subarray(0, cut);
      const r = dec.feed(piece, from, spans);
      data = concat(data, joinSpans(piece, spans));
      used += r.used;
      from = cut;
      if (r.done) break;
    }
    return { outcome: `${used} ${dec.done}`, data };
  } catch (err) {
    return { outcome: expectProxyError(err), data: new Uint8Array(0) };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function expectProxyError(err: unknown): string {
  if (!(err instanceof ProxyError) || !(err.kind in ERROR_TABLE)) throw err;
  return `error ${err.kind}`;
}

interface DriveOptions {
  readonly response: boolean;
  readonly method: string;
  readonly limits: HeadLimits;
  readonly reuseScan: boolean;
}

/** A session's read loop in miniature; returns its transcript. */
function drive(input: Uint8Array, cuts: readonly number[], o: DriveOptions): string[] {
  const events: string[] = [];
  const scan = new HeadScan();
  let buf: Uint8Array = new Uint8Array(0);
  let dec: BodyDecoder | null = null;
  let bodyBytes = 0;
  let steps = 0;
  let from = 0;
  try {
    for (const cut of cuts) {
      buf = concat(buf, input.subarray(from, cut));
      from = cut;
      for (let progress = true; progress; ) {
        if (++steps > 4 * input.length + 100) throw new Error("driver loop does not terminate");
        progress = false;
        if (dec === null) {
          const s = o.reuseScan ? scan : undefined;
          const r = o.response ? parseResponseHead(buf, o.limits, s) : parseRequestHead(buf, o.limits, s);
          if (!r.ok) break;
          events.push(JSON.stringify(r.head));
          if (!o.response && "method" in r.head) roundTrip(r.head);
          const framing: BodyFraming = "method" in r.head ? r.head.framing : responseFraming({ method: o.method }, r.head);
          dec = new BodyDecoder(framing, { response: o.response });
          buf = buf.subarray(r.consumed);
          bodyBytes = 0;
        }
        const { used, done } = dec.feed(buf);
        bodyBytes += used;
        buf = buf.subarray(used);
        if (done) {
          events.push(`body ${bodyBytes}`);
          dec = null;
          progress = true;
        }
      }
    }
    if (dec !== null) {
      dec.finish();
      events.push(`body ${bodyBytes} at EOF`);
    } else events.push(buf.length > 0 ? "need more" : "idle");
  } catch (err) {
    events.push(expectProxyError(err));
  }
  return events;
}

function roundTrip(head: import("../lib/protocol/http1.ts").RequestHead): void {
  const again = parseRequestHead(serializeRequestHead(head.method, head.target, head.version, head.headers), {
    maxRequestLineBytes: Infinity,
    maxHeaderBytes: Infinity,
    maxHeaderCount: Infinity,
  });
  if (!again.ok) throw new Error("serialized head does not parse");
  expect(again.head).toEqual(head);
}

describe("HTTP/1.1 fuzz", () => {
  test(`${ITERATIONS} head+body streams, split at random, only ProxyError escapes`, () => {
    const rand = prng(SEED);
    const kinds = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const response = rand() < 0.4;
      const input = bytes(mutate(rand, response ? responseSeeds : requestSeeds));
      const o: DriveOptions = {
        response,
        method: ["GET", "HEAD", "CONNECT"][Math.floor(rand() * 3)]!,
        limits: rand() < 0.3 ? SMALL : DEFAULT_LIMITS,
        reuseScan: true,
      };
      const whole = drive(input, [input.length], o);
      const split = drive(input, splits(rand, input.length), o);
      expect(split).toEqual(whole);
      if (i % 4 === 0) expect(drive(input, splits(rand, input.length), { ...o, reuseScan: false })).toEqual(whole);
      const last = whole[whole.length - 1]!;
      kinds.set(last.split(" ")[0]!, (kinds.get(last.split(" ")[0]!) ?? 0) + 1);
    }
    if (process.env.FUZZ_DEBUG) console.log(kinds);
    // The corpus must reach both outcomes often, or the fuzzer is testing nothing.
    expect(kinds.get("error") ?? 0).toBeGreaterThan(ITERATIONS / 10);
    expect((kinds.get("idle") ?? 0) + (kinds.get("body") ?? 0)).toBeGreaterThan(ITERATIONS / 20);
  });

  test(`${ITERATIONS / 2} chunked bodies, split at random, agree with whole-buffer decoding`, () => {
    const rand = prng(SEED + 1);
    for (let i = 0; i < ITERATIONS / 2; i++) {
      const input = bytes(mutate(rand, bodySeeds));
      const opts = { maxTrailerBytes: rand() < 0.5 ? 16 : 1024, response: rand() < 0.5 };
      const run = (cuts: readonly number[]): string => {
        const dec = new BodyDecoder({ kind: "chunked" }, opts);
        let used = 0;
        let from = 0;
        try {
          for (const cut of cuts) {
            const r = dec.feed(input.subarray(0, cut), from);
            used += r.used;
            from = cut;
            if (r.done) break;
          }
          return `${used} ${dec.done}`;
        } catch (err) {
          return expectProxyError(err);
        }
      };
      expect(run(splits(rand, input.length))).toBe(run([input.length]));
    }
  });

  test(`${ITERATIONS / 4} random payloads, chunk sizes and feed splits: de-chunking yields exactly the payload`, () => {
    const rand = prng(SEED + 2);
    const next = bytes("GET /next HTTP/1.1\r\n\r\n");
    for (let i = 0; i < ITERATIONS / 4; i++) {
      const payload = randomPayload(rand);
      const wire = bytes(encodeChunked(rand, payload));
      const input = rand() < 0.5 ? concat(wire, next) : wire; // a pipelined message after it is not body
      const { outcome, data } = dechunk(input, splits(rand, input.length), { response: rand() < 0.5 });
      expect(outcome).toBe(`${wire.length} true`);
      if (!Buffer.from(data).equals(Buffer.from(payload))) {
        throw new Error(`iteration ${i}: de-chunked ${data.length} bytes differ from the ${payload.length}-byte payload`);
      }
    }
  });

  test(`${ITERATIONS / 2} mutated chunked bodies: data spans change no outcome and do not depend on the split`, () => {
    const rand = prng(SEED + 3);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < ITERATIONS / 2; i++) {
      const seeds = rand() < 0.5 ? bodySeeds : [encodeChunked(rand, randomPayload(rand))];
      const input = bytes(mutate(rand, seeds));
      const opts = { maxTrailerBytes: rand() < 0.5 ? 16 : 1024, response: rand() < 0.5 };
      const plain = new BodyDecoder({ kind: "chunked" }, opts);
      let expected: string;
      try {
        const r = plain.feed(input);
        expected = `${r.used} ${r.done}`;
      } catch (err) {
        expected = expectProxyError(err);
      }
      const whole = dechunk(input, [input.length], opts);
      expect(whole.outcome).toBe(expected); // validation is exactly as strict with spans as without
      const split = dechunk(input, splits(rand, input.length), opts);
      expect(split.outcome).toBe(whole.outcome);
      expect(Buffer.from(split.data).equals(Buffer.from(whole.data))).toBe(true);
      const kind = expected.startsWith("error") ? "error" : expected.endsWith("true") ? "done" : "more";
      outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
    }
    if (process.env.FUZZ_DEBUG) console.log(outcomes);
    expect(outcomes.get("error") ?? 0).toBeGreaterThan(ITERATIONS / 20);
    expect(outcomes.get("done") ?? 0).toBeGreaterThan(ITERATIONS / 20);
  });
});

describe("framing fields are read as their octets say", () => {
  // Values built from octets that String.trim() would strip when read as latin1 (0x85, 0xA0),
  // other whitespace, and the real thing: whatever is accepted as chunked or as a length must
  // be exactly that once SP and HTAB (RFC 9110 OWS) are taken off, so no server behind us can
  // read the forwarded field as something else.
  const PIECES = ["chunked", "CHUNKED", "gzip", "5", "05", ",", " ", "\t", "\xa0", "\x85", "\x0b", "\x0c", "\xff", ";q=1", "identity"];
  const ows = (v: string) => v.replace(/^[ \t]+|[ \t]+$/g, "");
  test(`${ITERATIONS} requests and responses with generated Transfer-Encoding and Content-Length values`, () => {
    const rand = prng(SEED + 77);
    const value = () => Array.from({ length: 1 + Math.floor(rand() * 4) }, () => PIECES[Math.floor(rand() * PIECES.length)]).join("");
    let chunked = 0;
    let lengths = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const field = rand() < 0.5 ? "Transfer-Encoding" : "Content-Length";
      const v = value();
      const asRequest = rand() < 0.5;
      const head = asRequest ? `POST / HTTP/1.1\r\nHost: h\r\n${field}: ${v}\r\n\r\n` : `HTTP/1.1 200 OK\r\n${field}: ${v}\r\n\r\n`;
      let framing: { kind: string; length?: number } | null = null;
      try {
        const r = asRequest ? parseRequestHead(bytes(head), DEFAULT_LIMITS) : parseResponseHead(bytes(head), DEFAULT_LIMITS);
        if (r.ok) framing = "framing" in r.head ? r.head.framing : r.head.headerFraming;
      } catch (err) {
        expect(err).toBeInstanceOf(ProxyError);
        continue;
      }
      if (framing?.kind === "chunked") {
        chunked++;
        // Codings are tokens between OWS and commas, chunked the last of them.
        const members = v.split(",").map((m) => ows(m.split(";", 1)[0]!));
        expect({ v, tokens: members.every((m) => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(m)), last: members.at(-1)!.toLowerCase() }).toEqual({ v, tokens: true, last: "chunked" });
      }
      if (framing?.kind === "length") {
        lengths++;
        // One value, or a list of the same value: each member digits only between OWS.
        for (const member of v.split(",")) expect({ v, member: /^\d+$/.test(ows(member)) }).toEqual({ v, member: true });
      }
    }
    expect(chunked).toBeGreaterThan(0);
    expect(lengths).toBeGreaterThan(0);
  });
});
