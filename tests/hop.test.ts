/** lib/http/hop.ts: hop-by-hop stripping, Via, X-Forwarded-*, header helpers. */
import { describe, expect, test } from "bun:test";
import { displayIp, getHeader, HOP_BY_HOP, setHeader, stripHopByHop, withForwarded, withVia } from "../lib/http/hop.ts";
import type { Header } from "../lib/protocol/http1.ts";

const h = (name: string, value: string): Header => ({ name, value });
const names = (hs: readonly Header[]): string[] => hs.map((x) => x.name);

describe("stripHopByHop", () => {
  test("removes the fixed list, case-insensitively, and keeps end-to-end fields in order", () => {
    const input = [
      h("Host", "a"),
      h("connection", "keep-alive"),
      h("Proxy-Connection", "keep-alive"),
      h("Keep-Alive", "timeout=5"),
      h("Proxy-Authorization", "Basic eA=="),
      h("Proxy-Authenticate", "Basic"),
      h("TE", "trailers"),
      h("Accept", "*/*"),
      h("UPGRADE", "websocket"),
      h("X-A", "1"),
    ];
    expect(stripHopByHop(input, { keepUpgrade: false })).toEqual([h("Host", "a"), h("Accept", "*/*"), h("X-A", "1")]);
  });
  test("fields named by Connection tokens go too, from every Connection line (RFC 9110 §7.6.1)", () => {
    const input = [h("Connection", "X-Secret, x-other"), h("X-Secret", "s"), h("X-Other", "o"), h("connection", " ,X-Third"), h("x-third", "t"), h("X-Keep", "k")];
    expect(stripHopByHop(input, { keepUpgrade: false })).toEqual([h("X-Keep", "k")]);
  });
  test("Connection tokens never remove framing or Host (smuggling via Connection: Content-Length)", () => {
    const input = [h("Host", "a"), h("Connection", "Content-Length, Transfer-Encoding, Host"), h("Content-Length", "5"), h("Transfer-Encoding", "chunked")];
    expect(names(stripHopByHop(input, { keepUpgrade: false }))).toEqual(["Host", "Content-Length", "Transfer-Encoding"]);
  });
  test("Transfer-Encoding and Trailer are kept: bodies are relayed unchanged", () => {
    const input = [h("Transfer-Encoding", "chunked"), h("Trailer", "Expires")];
    expect(stripHopByHop(input, { keepUpgrade: false })).toEqual(input);
    expect(HOP_BY_HOP).not.toContain("transfer-encoding");
  });
  test("Upgrade kept only when asked, with a single Connection: Upgrade", () => {
    const input = [h("Host", "a"), h("Connection", "keep-alive, Upgrade, X-Hop"), h("Upgrade", "websocket"), h("X-Hop", "1"), h("Sec-WebSocket-Key", "k")];
    expect(stripHopByHop(input, { keepUpgrade: true })).toEqual([h("Host", "a"), h("Connection", "Upgrade"), h("Upgrade", "websocket"), h("Sec-WebSocket-Key", "k")]);
    expect(stripHopByHop(input, { keepUpgrade: false })).toEqual([h("Host", "a"), h("Sec-WebSocket-Key", "k")]);
  });
  test("keepUpgrade without a Connection: upgrade token does not keep Upgrade", () => {
    expect(stripHopByHop([h("Upgrade", "websocket"), h("Connection", "keep-alive")], { keepUpgrade: true })).toEqual([]);
  });
  test('keepUpgrade "always" (a 101): Upgrade kept, Connection: Upgrade whether or not the origin named it', () => {
    const named = [h("Connection", "Upgrade, X-Hop"), h("Upgrade", "websocket"), h("X-Hop", "1"), h("Keep-Alive", "t=1")];
    expect(stripHopByHop(named, { keepUpgrade: "always" })).toEqual([h("Connection", "Upgrade"), h("Upgrade", "websocket")]);
    expect(stripHopByHop([h("Upgrade", "websocket"), h("A", "b")], { keepUpgrade: "always" })).toEqual([h("Upgrade", "websocket"), h("A", "b"), h("Connection", "Upgrade")]);
  });
  test("Proxy-Connection's listed fields go like Connection's; its upgrade token keeps nothing", () => {
    const input = [h("Proxy-Connection", "keep-alive, X-Hop, Upgrade"), h("X-Hop", "1"), h("Upgrade", "websocket"), h("A", "b")];
    expect(stripHopByHop(input, { keepUpgrade: true })).toEqual([h("A", "b")]);
  });
  test("does not mutate its input", () => {
    const input = [h("Connection", "close"), h("A", "b")];
    stripHopByHop(input, { keepUpgrade: false });
    expect(input).toEqual([h("Connection", "close"), h("A", "b")]);
  });
  test("copy on write: a head without hop-by-hop fields is returned as it is", () => {
    const input = [h("Host", "a"), h("Accept", "*/*")];
    expect(stripHopByHop(input, { keepUpgrade: true })).toBe(input);
  });
});

describe("withVia", () => {
  test("adds Via when absent, in a new array (callers extend it)", () => {
    const input = [h("A", "b")];
    const out = withVia(input, "1.1", "sidecar-proxy");
    expect(out).toEqual([h("A", "b"), h("Via", "1.1 sidecar-proxy")]);
    expect(out).not.toBe(input);
    expect(input).toHaveLength(1);
    expect(withVia(input, "1.0", "other")).toEqual([h("A", "b"), h("Via", "1.0 other")]);
  });
  test("appends to the last existing Via line (RFC 9110 §7.6.3)", () => {
    const input = [h("via", "1.0 fred"), h("A", "b"), h("Via", "1.1 nowhere.com (Apache/1.1)")];
    expect(withVia(input, "1.0", "p")).toEqual([h("via", "1.0 fred"), h("A", "b"), h("Via", "1.1 nowhere.com (Apache/1.1), 1.0 p")]);
    expect(input[2]!.value).toBe("1.1 nowhere.com (Apache/1.1)");
  });
});

describe("withForwarded", () => {
  test("replaces every client-sent X-Forwarded-* and Forwarded (not trusted); names that only contain the words stay", () => {
    const input = [
      h("Host", "a"),
      h("X-Forwarded-For", "127.6.6.6"),
      h("x-forwarded-proto", "https"),
      h("X-FORWARDED-HOST", "evil"),
      h("Forwarded", "for=1"),
      h("X-Forwarded-Port", "443"),
      h("x-forwarded-prefix", "/admin"),
      h("X-FORWARDED-SSL", "on"),
      h("X-Forwarded-", "empty suffix"),
      // CGI, WSGI and PHP read these as HTTP_X_FORWARDED_FOR / _PROTO, some joined with ours.
      h("X_Forwarded_For", "127.6.6.6"),
      h("x-forwarded_proto", "https"),
      h("X_FORWARDED-HOST", "evil"),
      h("X-Not-Forwarded-For", "kept"),
      h("X_Not_Forwarded_For", "kept"),
      h("X_Forwarded", "kept"),
      h("X-Forwarded", "kept"),
      h("Forwarded-For", "kept"),
    ];
    expect(withForwarded(input, { clientIp: "127.0.0.7", proto: "http", host: "a:4143" })).toEqual([
      h("Host", "a"),
      h("X-Not-Forwarded-For", "kept"),
      h("X_Not_Forwarded_For", "kept"),
      h("X_Forwarded", "kept"),
      h("X-Forwarded", "kept"),
      h("Forwarded-For", "kept"),
      h("X-Forwarded-For", "127.0.0.7"),
      h("X-Forwarded-Proto", "http"),
      h("X-Forwarded-Host", "a:4143"),
    ]);
  });
  test("no X-Forwarded-Host without a host; IPv4-mapped IPv6 shown as IPv4", () => {
    const out = withForwarded([h("X-Forwarded-Host", "evil")], { clientIp: "::FFFF:127.0.2.1", proto: "https", host: null });
    expect(out).toEqual([h("X-Forwarded-For", "127.0.2.1"), h("X-Forwarded-Proto", "https")]);
  });
  test("displayIp leaves real IPv6 alone", () => {
    expect([displayIp("::1"), displayIp("::ffff:0:127.0.0.1"), displayIp("127.0.0.1")]).toEqual(["::1", "::ffff:0:127.0.0.1", "127.0.0.1"]);
  });
});

describe("header helpers", () => {
  const hs = [h("Host", "a"), h("accept", "x"), h("Accept", "y")];
  test("getHeader is case-insensitive and returns the first", () => {
    expect([getHeader(hs, "ACCEPT"), getHeader(hs, "host"), getHeader(hs, "nope")]).toEqual(["x", "a", undefined]);
  });
  test("setHeader replaces in place, drops duplicates, or appends", () => {
    expect(setHeader(hs, "Accept", "z")).toEqual([h("Host", "a"), h("accept", "z")]);
    expect(setHeader(hs, "X-New", "1")).toEqual([...hs, h("X-New", "1")]);
    expect(hs).toHaveLength(3);
  });
});
