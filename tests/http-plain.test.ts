/**
 * The byte-level shortcuts (lib/listeners/http-plain*.ts, and readConnectHead in lib/protocol/http1-connect.ts) against the general path they stand in
 * for (parse -> Header objects -> routeRequest / clientResponseHead -> serialize), on generated
 * heads and on mutations of them (fixed-seed PRNG, bounded counts). For every input:
 * - an error is the same error (kind and message) with and without the shortcut;
 * - a head the shortcut accepts equals the general path's head field for field, and the bytes it
 *   sends on (request: to the workload; response: to the client, for both client versions, both
 *   keep-alive decisions, with and without body bytes) are the general path's, byte for byte;
 * - the shortcut both accepts and declines a fair share, so both sides of it are exercised.
 */
import { describe, expect, test } from "bun:test";
import { ProxyError } from "../lib/errors.ts";
import { DEFAULT_LIMITS } from "../lib/limits.ts";
import { clientResponseHead, routeRequest } from "../lib/listeners/http-message.ts";
import { PlainForwardRequests, PlainRequest, PlainReverseRequests } from "../lib/listeners/http-plain-request.ts";
import { formatTarget } from "../lib/tunnel.ts";
import { PlainResponse, PlainResponses } from "../lib/listeners/http-plain-response.ts";
import { HeadScan, parseRequestHead, parseResponseHead, type HeadShortcut, type RequestHead, type ResponseHead } from "../lib/protocol/http1.ts";
import { readConnectHead } from "../lib/protocol/http1-connect.ts";
import { fuzzIterations, fuzzSeed, prng } from "./helpers/fuzz.ts";
import { bytes, REQUEST_VECTORS, RESPONSE_VECTORS } from "./helpers/http1-vectors.ts";

const ITERATIONS = fuzzIterations(20_000);
const SEED = fuzzSeed(0x91a1_2e55);
/** Never dialled: routeRequest only names it. */
const WORKLOAD = { host: "127.0.0.1", port: 8080 };
const CLIENT_IPS = ["::ffff:127.0.0.1", "127.0.0.3", "::1"];

type Rand = () => number;
const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

/** A field name in a random ASCII case. */
function anyCase(rand: Rand, name: string): string {
  const r = rand();
  if (r < 0.4) return name;
  if (r < 0.55) return name.toLowerCase();
  if (r < 0.65) return name.toUpperCase();
  return [...name].map((c) => (rand() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join("");
}

const OWS = ["", "", " ", " ", "  ", "\t", " \t"];

const REQUEST_FIELDS: readonly (readonly [string, readonly string[]])[] = [
  ["Host", ["127.0.0.1:8080", "127.0.0.1", "example.test", "", "[::1]:80", "[::1]", "bad host", "a:0", "a:99999", "a:", "h\xe9"]],
  ["Content-Length", ["0", "5", "0005", "9007199254740991", "9007199254740992", "5, 5", "-1", "", "x"]],
  ["Transfer-Encoding", ["chunked", "Chunked", "gzip, chunked", "identity", "chunked, chunked"]],
  ["Connection", ["keep-alive", "Keep-Alive", "close", "CLOSE", "close, x-custom", "upgrade", "", "te", "x-custom", "keep-alive, close"]],
  ["Keep-Alive", ["timeout=5"]],
  ["Proxy-Connection", ["keep-alive", "close", "keep-alive, x-custom", "te"]],
  ["TE", ["trailers"]],
  ["Upgrade", ["websocket"]],
  ["Proxy-Authorization", ["Basic dTpw"]],
  ["Proxy-Authenticate", ["Basic"]],
  ["Expect", ["100-continue", "x"]],
  ["Via", ["1.0 fred", "", "1.1 a, 1.1 b"]],
  ["Forwarded", ["for=127.0.0.9"]],
  ["X-Forwarded-For", ["127.0.0.5"]],
  ["X-Forwarded-Proto", ["https"]],
  ["X-Forwarded-Host", ["other.test"]],
  // Every X-Forwarded-* goes on a reverse listener, whatever its length; lookalikes stay.
  ["X-Forwarded-Port", ["8443"]],
  ["x-forwarded-prefix", ["/api"]],
  ["X-FORWARDED-SSL", ["on"]],
  ["X-Forwarded-Server", ["edge"]],
  ["X-Forwarded-", ["empty suffix"]],
  ["X-Forwarded", ["no dash"]],
  ["X-Forwardee-For", ["one letter off"]],
  ["X-Not-Forwarded-For", ["127.0.0.6"]],
  ["Accept", ["*/*"]],
  ["User-Agent", ["fuzz/1.0"]],
  ["X-Custom", ["a\xe9b", "x-custom", "", "keep-alive"]],
  ["Cookie", ["a=b; c=d"]],
  ["Hosts", ["not Host"]],
  ["Content-Lengths", ["not Content-Length"]],
];

const RESPONSE_FIELDS: readonly (readonly [string, readonly string[]])[] = [
  ["Content-Length", ["0", "64", "0064", "9007199254740992", "64, 64", "64, 65", "", "x"]],
  ["Transfer-Encoding", ["chunked", "CHUNKED", "gzip", "chunked, gzip", "gzip, chunked"]],
  ["Connection", ["keep-alive", "Keep-Alive", "close", "Close", "close, x-custom", "upgrade", "", "x-custom"]],
  ["Keep-Alive", ["timeout=5"]],
  ["Proxy-Authenticate", ["Basic"]],
  ["Upgrade", ["websocket"]],
  ["TE", ["trailers"]],
  ["Trailer", ["X-Sum"]],
  ["Via", ["1.0 fred", "", "1.1 a, 1.1 b"]],
  ["Content-Type", ["text/plain"]],
  ["Date", ["Fri, 27 Nov 2026 15:00:00 GMT"]],
  ["Set-Cookie", ["a=b", "c=d"]],
  ["Host", ["127.0.0.1"]],
  ["X-Forwarded-For", ["127.0.0.5"]],
  ["X-Forwarded-Port", ["8443"]],
  ["Expect", ["100-continue"]],
  ["X-Custom", ["a\xe9b", "x-custom"]],
];

function fields(rand: Rand, pool: readonly (readonly [string, readonly string[]])[], common: readonly string[]): string {
  let out = "";
  for (const line of common) if (rand() < 0.85) out += line;
  for (let n = Math.floor(rand() * rand() * 7); n > 0; n--) {
    const [name, values] = pick(rand, pool);
    out += `${anyCase(rand, name)}:${pick(rand, OWS)}${pick(rand, values)}${pick(rand, OWS)}\r\n`;
  }
  // Shuffle-free but not fixed: sometimes the usual fields come last.
  return out;
}

/** Request-targets a reverse listener sees (origin-form mostly). */
const REVERSE_TARGETS = [
  "/",
  "/",
  "/a/b?c=d",
  "/|{}",
  "*",
  "http://127.0.0.1:8080/x",
  "http://127.0.0.1",
  "127.0.0.1:80",
  "https://127.0.0.1/",
  "HTTPS://else.invalid:8443/zz?q",
  "https://[::1]",
  "ftp://127.0.0.1/",
];
/** And a forward listener (absolute-form mostly): names, IPv6 literals, default and odd ports, empty paths, queries, bad authorities. */
const FORWARD_TARGETS = [
  "http://127.0.0.1:8080/x",
  "http://127.0.0.1:8080/x",
  "http://127.0.0.1",
  "http://127.0.0.1:80/a?b=c",
  "http://127.0.0.1:0080/",
  "http://127.0.0.1:08080?q",
  "HTTP://127.0.0.1:8080/",
  "hTtP://example.test/p/|{}",
  "http://example.test?x=1",
  "http://Example.Test:8080/",
  "http://[::1]:8080/v6",
  "http://[::1]",
  "http://[::1/",
  "http://[127.0.0.1]/",
  "http://u@127.0.0.1/",
  "http://127.0.0.1:/",
  "http://127.0.0.1:0/",
  "http://127.0.0.1:65536/",
  "http://",
  "http:///x",
  "http://a b/",
  "https://127.0.0.1/",
  "ftp://127.0.0.1/",
  "http:/127.0.0.1/",
  "/",
  "/",
  "/a?b",
  "/p",
  "*",
  "127.0.0.1:80",
];

function request(rand: Rand, targets: readonly string[] = REVERSE_TARGETS): string {
  const method = pick(rand, ["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "get", "M-SEARCH"]);
  const target = pick(rand, targets);
  const version = rand() < 0.85 ? "HTTP/1.1" : "HTTP/1.0";
  const lead = rand() < 0.1 ? "\r\n" : "";
  const head = `${lead}${method} ${target} ${version}\r\n${fields(rand, REQUEST_FIELDS, ["Host: 127.0.0.1:8080\r\n", "User-Agent: fuzz\r\n"])}\r\n`;
  return head + (rand() < 0.2 ? "hello" : "");
}

/** CONNECT authorities: names, IPv4, IPv6 literals, and what authority-form does not allow. */
const CONNECT_TARGETS = [
  "127.0.0.1:443",
  "127.0.0.1:443",
  "example.test:443",
  "Example.Test:8443",
  "[::1]:443",
  "[::1]",
  "[::1:443",
  "127.0.0.1",
  "127.0.0.1:",
  "127.0.0.1:0",
  "127.0.0.1:65535",
  "127.0.0.1:65536",
  "127.0.0.1:0443",
  "a_b:1",
  "h\xe9:1",
  "u@h:1",
  "http://127.0.0.1:443",
  "/",
  "*",
];

/** CONNECT clients send few fields, none that decide framing, some a Connection line; the request pool adds the rest. */
const CONNECT_FIELDS: readonly (readonly [string, readonly string[]])[] = [
  ...Array.from({ length: 4 }, () => [
    ["User-Agent", ["fuzz", "curl/7.88.1", "Java/17.0.9", "Go-http-client/1.1"]] as const,
    ["Accept", ["*/*", "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"]] as const,
    ["Proxy-Connection", ["keep-alive", "Keep-Alive"]] as const,
    ["Connection", ["close", "Close", "keep-alive"]] as const, // undici: `connection: close`
    ["X-Trace", ["1", "", "a\tb", "\x7f"]] as const,
  ]).flat(),
  ...REQUEST_FIELDS,
];

function connectHead(rand: Rand): string {
  const method = rand() < 0.85 ? "CONNECT" : pick(rand, ["connect", "GET", "CONNECT\t"]);
  // Mostly what clients send (a name or IPv4 with its port), else anything from the list.
  const target = rand() < 0.6 ? pick(rand, CONNECT_TARGETS.slice(0, 4)) : pick(rand, CONNECT_TARGETS);
  const version = rand() < 0.85 ? "HTTP/1.1" : pick(rand, ["HTTP/1.0", "HTTP/2.0", "http/1.1"]);
  const lead = rand() < 0.05 ? "\r\n" : "";
  const host = rand() < 0.85 ? `${anyCase(rand, "Host")}:${pick(rand, OWS)}${rand() < 0.9 ? target : pick(rand, CONNECT_TARGETS)}${pick(rand, OWS)}\r\n` : "";
  return `${lead}${method} ${target} ${version}\r\n${fields(rand, CONNECT_FIELDS, [host, "User-Agent: fuzz\r\n", "Proxy-Connection: Keep-Alive\r\n"])}\r\n`;
}

function response(rand: Rand): string {
  const line = pick(rand, [
    "HTTP/1.1 200 OK",
    "HTTP/1.1 200 OK",
    "HTTP/1.0 200 OK",
    "HTTP/1.1 204 No Content",
    "HTTP/1.1 304 Not Modified",
    "HTTP/1.1 100 Continue",
    "HTTP/1.1 101 Switching Protocols",
    "HTTP/1.1 404 ",
    "HTTP/1.1 500",
    "HTTP/1.1 200 \xe9t\xe9",
    "HTTP/1.1 600 X",
    "HTTP/2.0 200 OK",
  ]);
  const head = `${line}\r\n${fields(rand, RESPONSE_FIELDS, ["Content-Type: text/plain\r\n", "Content-Length: 64\r\n"])}\r\n`;
  return head + (rand() < 0.3 ? "0123456789" : "");
}

const INSERTS = ["\r\n", "\n", " ", "\t", ":", ",", "\x00", "\x80", "\xff", "Connection: close\r\n", "Host: h\r\n", "Via: x\r\n", "Content-Length: 1\r\n"];

function mutate(rand: Rand, s: string): string {
  for (let m = 1 + Math.floor(rand() * 3); m > 0; m--) {
    const at = Math.floor(rand() * (s.length + 1));
    switch (Math.floor(rand() * 4)) {
      case 0: s = s.slice(0, at) + String.fromCharCode(Math.floor(rand() * 256)) + s.slice(at + 1); break;
      case 1: s = s.slice(0, at) + pick(rand, INSERTS) + s.slice(at); break;
      case 2: s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rand() * 4)); break;
      default: s = s.slice(0, at) + s[at]?.toUpperCase() + s.slice(at + 1); break;
    }
  }
  return s;
}

type Outcome<T> = { head: T; consumed: number } | { error: string } | { needMore: true };
type Parse<T> = (buf: Uint8Array, limits: typeof DEFAULT_LIMITS, scan: HeadScan, shortcut?: HeadShortcut<T>) => ReturnType<typeof parseRequestHead> | ReturnType<typeof parseResponseHead>;

/** Parses the whole input, after a first piece of it (`split`) when that is within it. */
function outcome<T>(parse: Parse<T>, input: Uint8Array, split: number, shortcut?: HeadShortcut<T>): Outcome<T> {
  const scan = new HeadScan();
  try {
    if (split > 0 && split < input.length) parse(input.subarray(0, split), DEFAULT_LIMITS, scan, shortcut); // the scan resumes from it
    const r = parse(input, DEFAULT_LIMITS, scan, shortcut);
    return r.ok ? { head: r.head as T, consumed: r.consumed } : { needMore: true };
  } catch (err) {
    if (!(err instanceof ProxyError)) throw err;
    return { error: `${err.kind}: ${err.message}` };
  }
}

/**
 * Parses `text` with and without the shortcut and checks what must agree whatever it does (the
 * error, or where the head ends). Returns both heads when the shortcut took it, else the count to bump.
 */
function bothWays<T>(rand: Rand, text: string, parse: Parse<T>, shortcut: HeadShortcut<T>, taken: (head: T) => boolean): { general: T; fast: T } | "declined" | "no head" {
  const input = bytes(text);
  const split = rand() < 0.3 ? Math.floor(rand() * input.length) : 0;
  const general = outcome(parse, input, split);
  const fast = outcome(parse, input, split, shortcut);
  if (!("head" in general) || !("head" in fast)) {
    expect({ input: text, fast }).toEqual({ input: text, fast: general });
    return "no head";
  }
  expect(fast.consumed).toBe(general.consumed);
  return taken(fast.head) ? { general: general.head, fast: fast.head } : "declined";
}

/** The fields of a RequestHead, read through its interface (getters included). */
function requestFields(h: RequestHead): unknown {
  const { method, target, form, version, headers, url, authority, framing, keepAlive, expectContinue, upgrade } = h;
  return { method, target, form, version, headers, url, authority, framing, keepAlive, expectContinue, upgrade };
}

function responseFields(h: ResponseHead): unknown {
  const { version, status, reason, headers, keepAlive, headerFraming } = h;
  return { version, status, reason, headers, keepAlive, headerFraming };
}

/** What the general path sends, and where (forward: the origin the request names). */
function routed(head: RequestHead, workload: typeof WORKLOAD | null, clientIp: string): { sent: Uint8Array; target: unknown } | string {
  try {
    const { head: sent, target } = routeRequest({ request: head, workload, clientIp });
    return { sent, target: { ...target, key: formatTarget(target) } };
  } catch (err) {
    if (!(err instanceof ProxyError)) throw err;
    return `${err.kind}: ${err.message}`;
  }
}

/** The same from a head the shortcut took: the bytes it writes, and the session's dial target. */
function routedPlain(head: PlainRequest): { sent: Uint8Array; target: unknown } {
  const origin = head.origin;
  const target = origin === null ? { ...WORKLOAD, key: formatTarget(WORKLOAD) } : { host: origin.host, port: origin.port, key: origin.key };
  return { sent: head.upstreamHead, target };
}

const CLIENT_CASES = [
  ["1.1", true],
  ["1.1", false],
  ["1.0", true],
  ["1.0", false],
] as const;

describe("plain heads on bytes: the same as the general path", () => {
  for (const side of ["reverse", "forward"] as const) {
    test(`${ITERATIONS} requests to a ${side} listener, generated and mutated: same errors, same heads, same bytes to the same place`, () => {
      const rand = prng(side === "reverse" ? SEED : SEED + 2);
      const seeds = REQUEST_VECTORS.map((v) => v.head);
      const targets = side === "reverse" ? REVERSE_TARGETS : FORWARD_TARGETS;
      const workload = side === "reverse" ? WORKLOAD : null;
      const shortcuts: Record<string, PlainReverseRequests | PlainForwardRequests> = {};
      let accepted = 0;
      let declined = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        let text = i % 4 === 3 ? mutate(rand, rand() < 0.7 ? request(rand, targets) : pick(rand, seeds)) : request(rand, targets);
        if (rand() < 0.05) text = text + text; // pipelined: the shortcut must stop at the first head
        const clientIp = pick(rand, CLIENT_IPS);
        // One shortcut per client, as per connection: its Host (and origin) cache sees hits and
        // changes, and its one head is filled anew each time (nothing of the last head may show through).
        const shortcut = (shortcuts[clientIp] ??= side === "reverse" ? new PlainReverseRequests(clientIp) : new PlainForwardRequests());
        const both = bothWays<RequestHead>(rand, text, parseRequestHead, shortcut, (h) => h instanceof PlainRequest);
        if (both === "declined") declined++;
        if (typeof both === "string") continue;
        accepted++;
        const { general, fast } = both;
        expect({ input: text, head: requestFields(fast) }).toEqual({ input: text, head: requestFields(general) });
        expect({ input: text, routed: routedPlain(fast as PlainRequest) as unknown }).toEqual({ input: text, routed: routed(general, workload, clientIp) });
      }
      expect(accepted).toBeGreaterThan(ITERATIONS / 10);
      expect(declined).toBeGreaterThan(ITERATIONS / 10);
    });
  }

  test(`${ITERATIONS} responses, generated and mutated: same errors, same heads, same bytes to the client`, () => {
    const rand = prng(SEED + 1);
    const seeds = RESPONSE_VECTORS.map((v) => v.head);
    const body = bytes("0123456789");
    const framedBody = bytes("\r\n0123456789\r\n");
    // One shortcut for the whole run, as per connection: its one head is filled anew each time.
    const shortcut = new PlainResponses();
    let accepted = 0;
    let declined = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const text = i % 4 === 3 ? mutate(rand, rand() < 0.7 ? response(rand) : pick(rand, seeds)) : response(rand);
      const both = bothWays<ResponseHead>(rand, text, parseResponseHead, shortcut, (h) => h instanceof PlainResponse);
      if (both === "declined") declined++;
      if (typeof both === "string") continue;
      accepted++;
      const { general, fast } = both;
      expect({ input: text, head: responseFields(fast) }).toEqual({ input: text, head: responseFields(general) });
      for (const [version, keepAlive] of CLIENT_CASES) {
        for (const extra of [undefined, body]) {
          const want = clientResponseHead(general, version, keepAlive, extra);
          expect({ input: text, version, keepAlive, sent: clientResponseHead(fast, version, keepAlive, extra) }).toEqual({ input: text, version, keepAlive, sent: want });
        }
        // The body as a range of a larger buffer, as the reader passes it.
        const ranged = clientResponseHead(fast, version, keepAlive, framedBody, 2, 2 + body.byteLength);
        expect({ input: text, ranged }).toEqual({ input: text, ranged: clientResponseHead(general, version, keepAlive, body) });
      }
    }
    expect(accepted).toBeGreaterThan(ITERATIONS / 10);
    expect(declined).toBeGreaterThan(ITERATIONS / 10);
  });

  test("the bench's request and response (wrk, loadgen), a browser-like request and chunked messages take the shortcut", () => {
    const accepts = (shortcut: HeadShortcut<unknown>, text: string, parse: typeof parseRequestHead | typeof parseResponseHead) => {
      const r = parse(bytes(text), DEFAULT_LIMITS, new HeadScan(), shortcut as never);
      return r.ok ? r.head.constructor.name : "need more";
    };
    const requests = new PlainReverseRequests("127.0.0.1");
    const responses = new PlainResponses();
    expect(accepts(requests, "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", parseRequestHead)).toBe("PlainRequest");
    const browser =
      "GET /a?b=c HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html\r\nAccept-Encoding: gzip, deflate\r\nCookie: a=b\r\n\r\n";
    expect(accepts(requests, browser, parseRequestHead)).toBe("PlainRequest");
    expect(accepts(requests, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", parseRequestHead)).toBe("PlainRequest");
    // ApacheBench's keep-alive request (ab -k): HTTP/1.0.
    expect(accepts(requests, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n", parseRequestHead)).toBe("PlainRequest");
    expect(accepts(responses, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n", parseResponseHead)).toBe("PlainResponse");
    expect(accepts(requests, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", parseRequestHead)).toBe("PlainRequest");
    expect(accepts(responses, "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", parseResponseHead)).toBe("PlainResponse");
    // Forward: wrk's absolute-form request (bench/wrk/check.lua) and curl -x's.
    const forward = new PlainForwardRequests();
    expect(accepts(forward, "GET http://127.0.0.1:8080/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", parseRequestHead)).toBe("PlainRequest");
    const curl = "GET http://127.0.0.1:8080/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n";
    expect(accepts(forward, curl, parseRequestHead)).toBe("PlainRequest");
    expect(accepts(forward, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", parseRequestHead)).toBe("Object"); // origin-form: the general path's 400
    // Declined, so the general path answers: a Connection option naming a field, an upgrade, Expect.
    expect(accepts(requests, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, x-trace\r\nX-Trace: 1\r\n\r\n", parseRequestHead)).toBe("Object");
    expect(accepts(requests, "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", parseRequestHead)).toBe("Object");
    expect(accepts(requests, "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", parseRequestHead)).toBe("Object");
  });

  test(`${ITERATIONS} CONNECT heads, generated and mutated, some under tight limits: readConnectHead takes only what the parser takes, as it does`, () => {
    const rand = prng(SEED + 3);
    const seeds = REQUEST_VECTORS.map((v) => v.head).filter((h) => h.includes("CONNECT"));
    let taken = 0;
    let left = 0; // valid CONNECT heads it leaves to the general parser
    for (let i = 0; i < ITERATIONS; i++) {
      let text = i % 4 === 3 ? mutate(rand, rand() < 0.8 || seeds.length === 0 ? connectHead(rand) : pick(rand, seeds)) : connectHead(rand);
      if (rand() < 0.2) text += rand() < 0.5 ? "\x16\x03\x01\x00" : text; // a TLS ClientHello's first bytes, or a second head
      const limits =
        rand() < 0.2
          ? { ...DEFAULT_LIMITS, maxRequestLineBytes: 10 + Math.floor(rand() * 40), maxHeaderBytes: Math.floor(rand() * 120), maxHeaderCount: Math.floor(rand() * 5) }
          : DEFAULT_LIMITS;
      const input = bytes(text);
      const fast = readConnectHead(input, limits);
      let general: { authority: unknown; consumed: number } | string;
      try {
        const r = parseRequestHead(input, limits, new HeadScan());
        general = !r.ok ? "need more" : r.head.method !== "CONNECT" ? r.head.method : { authority: r.head.authority, consumed: r.consumed };
      } catch (err) {
        if (!(err instanceof ProxyError)) throw err;
        general = `${err.kind}: ${err.message}`;
      }
      if (fast === null) {
        if (typeof general !== "string") left++;
        continue;
      }
      taken++;
      expect({ input: text, limits, head: fast as unknown }).toEqual({ input: text, limits, head: general });
    }
    expect(taken).toBeGreaterThan(ITERATIONS / 10);
    expect(left).toBeGreaterThan(ITERATIONS / 100);
  });

  test("the CONNECT heads of curl, Go, Java, undici and the bench are read in one pass; the rest is left to the parser", () => {
    const read = (text: string) => readConnectHead(bytes(text), DEFAULT_LIMITS);
    expect(read("CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n\x16\x03")).toEqual({ authority: { host: "127.0.0.1", port: 443 }, consumed: 55 }); // bench/loadgen.c, Go
    expect(read("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nUser-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n")).not.toBeNull();
    const java = "CONNECT example.test:443 HTTP/1.1\r\nUser-Agent: Java/17.0.9\r\nHost: example.test:443\r\nAccept: */*\r\nProxy-Connection: keep-alive\r\n\r\n";
    expect(read(java)?.authority).toEqual({ host: "example.test", port: 443 });
    expect(read("CONNECT example.test:443 HTTP/1.0\r\n\r\n")).not.toBeNull();
    // undici's ProxyAgent (lib/dispatcher/client-h1.js): a CONNECT always says `connection: close`.
    const undici = "CONNECT 127.0.0.1:8443 HTTP/1.1\r\nhost: 127.0.0.1:8443\r\nconnection: close\r\n\r\n";
    expect(read(undici)).toEqual({ authority: { host: "127.0.0.1", port: 8443 }, consumed: undici.length });
    // Left to the parser (valid there): an IPv6 literal, a Host without the port, an Expect line.
    expect(read("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n")).toBeNull();
    expect(read("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test\r\n\r\n")).toBeNull();
    expect(read("CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nExpect: 100-continue\r\n\r\n")).toBeNull();
  });

  test("the rewritten request, spelled out: hop-by-hop and every client forwarding field go, ours and Via come last", () => {
    const input = bytes(
      "GET /p HTTP/1.1\r\nhost:  app.test \r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 127.0.0.5\r\nVia: 1.0 fred\r\n" +
        "X-Forwarded-Port: 8443\r\nx-forwarded-prefix: /api\r\nX-FORWARDED-SSL: on\r\nForwarded: for=127.0.0.5\r\nX-Not-Forwarded-For: 127.0.0.6\r\nX_Forwarded_For: 127.0.0.5\r\nx-forwarded_proto: https\r\nAccept: */*\r\n\r\n",
    );
    const want =
      "GET /p HTTP/1.1\r\nhost: app.test\r\nVia: 1.0 fred, 1.1 sidecar-proxy\r\nX-Not-Forwarded-For: 127.0.0.6\r\nAccept: */*\r\n" +
      "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: app.test\r\n\r\n";
    const r = parseRequestHead(input, DEFAULT_LIMITS, new HeadScan(), new PlainReverseRequests("::ffff:127.0.0.1"));
    if (!r.ok || !(r.head instanceof PlainRequest)) throw new Error("not taken by the shortcut");
    expect(new TextDecoder().decode(r.head.upstreamHead)).toBe(want);
    // And the general path, which the shortcut stands in for.
    const general = parseRequestHead(input, DEFAULT_LIMITS, new HeadScan());
    if (!general.ok || general.head instanceof PlainRequest) throw new Error("not parsed by the general path");
    const { head } = routeRequest({ request: general.head, workload: WORKLOAD, clientIp: "::ffff:127.0.0.1" });
    expect(new TextDecoder().decode(head)).toBe(want);
  });

  test("OPTIONS to a URL with neither path nor query asks about the server: OPTIONS * (RFC 9112 §3.2.4), forward and reverse; the shortcut leaves it to the general path", () => {
    const requestLine = (target: string, workload: typeof WORKLOAD | null, shortcut: HeadShortcut<RequestHead>) => {
      const input = bytes(`OPTIONS ${target} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n`);
      const r = parseRequestHead(input, DEFAULT_LIMITS, new HeadScan(), shortcut);
      if (!r.ok) throw new Error("incomplete");
      const head = r.head instanceof PlainRequest ? r.head.upstreamHead : routeRequest({ request: r.head, workload, clientIp: "127.0.0.1" }).head;
      return new TextDecoder().decode(head).split("\r\n")[0];
    };
    for (const [workload, shortcut] of [
      [null, new PlainForwardRequests()],
      [WORKLOAD, new PlainReverseRequests("127.0.0.1")],
    ] as const) {
      expect(requestLine("http://127.0.0.1:8080", workload, shortcut)).toBe("OPTIONS * HTTP/1.1");
      expect(requestLine("http://127.0.0.1:8080/", workload, shortcut)).toBe("OPTIONS / HTTP/1.1");
      expect(requestLine("http://127.0.0.1:8080?q", workload, shortcut)).toBe("OPTIONS /?q HTTP/1.1");
      expect(requestLine("http://127.0.0.1:8080/a", workload, shortcut)).toBe("OPTIONS /a HTTP/1.1");
    }
    const get = parseRequestHead(bytes("GET http://127.0.0.1:8080 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"), DEFAULT_LIMITS, new HeadScan(), new PlainForwardRequests());
    if (!get.ok || !(get.head instanceof PlainRequest)) throw new Error("not taken by the shortcut");
    expect(new TextDecoder().decode(get.head.upstreamHead)).toStartWith("GET / HTTP/1.1\r\n");
  });

  test("the rewritten forward request, spelled out: origin-form, Host from the target in place, forwarding fields kept", () => {
    const input = bytes(
      "GET HTTP://[::1]:0080?q=1 HTTP/1.0\r\nConnection: keep-alive\r\nHOST: other.test\r\nProxy-Authorization: Basic dTpw\r\nX-Forwarded-For: 127.0.0.5\r\nForwarded: for=127.0.0.5\r\nX-Forwarded-Port: 80\r\n\r\n",
    );
    const r = parseRequestHead(input, DEFAULT_LIMITS, new HeadScan(), new PlainForwardRequests());
    if (!r.ok || !(r.head instanceof PlainRequest)) throw new Error("not taken by the shortcut");
    expect(r.head.origin).toMatchObject({ host: "::1", port: 80, key: "[::1]:80" });
    expect(r.head.keepAlive).toBe(true);
    expect(new TextDecoder().decode(r.head.upstreamHead)).toBe(
      "GET /?q=1 HTTP/1.1\r\nHOST: [::1]\r\nX-Forwarded-For: 127.0.0.5\r\nForwarded: for=127.0.0.5\r\nX-Forwarded-Port: 80\r\nVia: 1.0 sidecar-proxy\r\n\r\n",
    );
  });
});
