/**
 * SOCKS4/4a/5 wire vectors (RFC 1928, RFC 1929, SOCKS4, SOCKS4a), valid and corrupted. Every vector
 * is fed three ways (STYLE.md, after h11): whole, one byte at a time, and coalesced with early
 * client data, which must come out of takeRest() intact.
 */
import { describe, expect, test } from "bun:test";
import { ERROR_TABLE, ProxyError, type ErrorKind } from "../lib/errors.ts";
import { createSocksMachine, describeReply, type SocksEvent, type SocksMachine, type SocksOptions } from "../lib/protocol/socks.ts";
import { parseIPv4 } from "../lib/protocol/socks-address.ts";
import { createVerifier } from "../lib/auth.ts";

/** "05 01 00" -> bytes; spaces are ignored. */
function h(hexText: string): Uint8Array {
  const clean = hexText.replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (x) => parseInt(x, 16));
}
const a = (text: string) => new TextEncoder().encode(text);
const text = (octets: Uint8Array) => new TextDecoder().decode(octets);
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((x) => [...x]));

const NO_AUTH: SocksOptions = { auth: null, maxUserIdBytes: 255 };
const AUTH: SocksOptions = { auth: { verify: (u, p) => text(u) === "alice" && text(p) === "s3cret" }, maxUserIdBytes: 255 };
const EARLY = a("GET / HTTP/1.1\r\n\r\n\x00\x05");

const REPLY5 = (rep: number) => h(`05 ${rep.toString(16).padStart(2, "0")} 00 01 00000000 0000`);
const REPLY4_FAIL = h("00 5b 0000 00000000");

// SOCKS5 pieces
const GREET_NOAUTH = h("05 01 00");
const GREET_BOTH = h("05 02 00 02");
const RFC1929 = (u: string, p: string) => cat(h("01"), Uint8Array.of(u.length), a(u), Uint8Array.of(p.length), a(p));
const REQ_V4 = h("05 01 00 01 7f000001 1f90"); // 127.0.0.1:8080
const REQ_V6 = h("05 01 00 04 20010db8000000000000000000000001 01bb"); // [2001:db8::1]:443
const REQ_DOMAIN = cat(h("05 01 00 03 0b"), a("example.com"), h("0050"));
const SEND_00 = { type: "send", bytes: h("05 00") };
const SEND_02 = { type: "send", bytes: h("05 02") };
const AUTH_OK = { type: "send", bytes: h("01 00") };
const fail = (kind: ErrorKind, reply: Uint8Array | null) => ({ type: "fail", kind, reply, detail: expect.any(String) });

interface Vector {
  name: string;
  options?: SocksOptions;
  input: Uint8Array;
  events: unknown[];
  state: SocksMachine["state"];
  /** For "connect" vectors: the bound address given to success() and the exact reply. */
  success?: { address: string; port: number; reply: Uint8Array };
}

const connect5 = (atyp: string, host: string, port: number, username?: string) => ({
  type: "connect",
  version: 5,
  target: { atyp, host, port },
  ...(username ? { username } : {}),
});
const connect4 = (atyp: string, host: string, port: number, userId?: string) => ({
  type: "connect",
  version: 4,
  target: { atyp, host, port },
  ...(userId ? { userId } : {}),
});

const VECTORS: Vector[] = [
  // ---- SOCKS5, no auth ----
  {
    name: "socks5 CONNECT IPv4, bound IPv4",
    input: cat(GREET_NOAUTH, REQ_V4),
    events: [SEND_00, connect5("ipv4", "127.0.0.1", 8080)],
    state: "connecting",
    success: { address: "127.1.2.3", port: 54321, reply: h("05 00 00 01 7f010203 d431") },
  },
  {
    name: "socks5 CONNECT IPv6, bound IPv6",
    input: cat(GREET_NOAUTH, REQ_V6),
    events: [SEND_00, connect5("ipv6", "2001:db8::1", 443)],
    state: "connecting",
    success: { address: "2001:db8::a:1", port: 1, reply: h("05 00 00 04 2001 0db8 0000 0000 0000 0000 000a 0001 0001") },
  },
  {
    name: "socks5 CONNECT domain (curl socks5h), client offers 00 and 02",
    input: cat(GREET_BOTH, REQ_DOMAIN),
    events: [SEND_00, connect5("domain", "example.com", 80)],
    state: "connecting",
    success: { address: "not-an-ip", port: 80, reply: h("05 00 00 01 00000000 0050") },
  },
  {
    name: "socks5 CONNECT domain that is an IP literal, RSV != 0 tolerated",
    input: cat(GREET_NOAUTH, h("05 01 ff 03 03"), a("::1"), h("0016")),
    events: [SEND_00, connect5("domain", "::1", 22)],
    state: "connecting",
    success: { address: "::ffff:127.0.0.1", port: 2, reply: h("05 00 00 04 00000000000000000000ffff7f000001 0002") },
  },
  ...[
    ["00000000000000000000000000000000", "::"],
    ["00000000000000000000000000000001", "::1"],
    ["00000000000000000000ffff7f000201", "::ffff:127.0.2.1"],
    ["20010db8000000010001000100010001", "2001:db8:0:1:1:1:1:1"],
    ["20010db8000000010000000000000001", "2001:db8:0:1::1"], // the longest zero run is the one compressed
    ["20010db8000000000002000000000003", "2001:db8::2:0:0:3"], // of two equal runs, the first
    ["20010DB8000000000000000000ABCDEF", "2001:db8::ab:cdef"], // lower-case hex
  ].map(([bytes, text]) => ({
    name: `socks5 IPv6 RFC 5952 text ${text}`,
    input: cat(GREET_NOAUTH, h(`05 01 00 04 ${bytes} 0050`)),
    events: [SEND_00, connect5("ipv6", text!, 80)],
    state: "connecting" as const,
  })),
  // ---- SOCKS5, auth ----
  {
    name: "socks5 RFC 1929 correct credentials",
    options: AUTH,
    input: cat(GREET_BOTH, RFC1929("alice", "s3cret"), REQ_DOMAIN),
    events: [SEND_02, AUTH_OK, connect5("domain", "example.com", 80, "alice")],
    state: "connecting",
  },
  {
    name: "socks5 RFC 1929 wrong credentials -> 01 01",
    options: AUTH,
    input: cat(GREET_BOTH, RFC1929("alice", "wrong"), REQ_V4),
    events: [SEND_02, fail("authFailed", h("01 01"))],
    state: "closed",
  },
  {
    name: "socks5 RFC 1929 empty password is checked, not malformed",
    options: AUTH,
    input: cat(h("05 01 02"), RFC1929("alice", ""), REQ_V4),
    events: [SEND_02, fail("authFailed", h("01 01"))],
    state: "closed",
  },
  {
    name: "socks5 RFC 1929 bad VER -> 01 01, protocol",
    options: AUTH,
    input: cat(h("05 01 02"), h("05 05"), a("alice")),
    events: [SEND_02, fail("protocol", h("01 01"))],
    state: "closed",
  },
  {
    name: "socks5 auth required, client offers only 00 -> 05 FF",
    options: AUTH,
    input: cat(GREET_NOAUTH, REQ_V4),
    events: [fail("authFailed", h("05 ff"))],
    state: "closed",
  },
  {
    name: "socks5 no auth, client offers only 02 and GSSAPI -> 05 FF",
    input: cat(h("05 02 01 02"), REQ_V4),
    events: [fail("authFailed", h("05 ff"))],
    state: "closed",
  },
  {
    name: "socks5 NMETHODS=0 -> 05 FF, protocol",
    input: h("05 00"),
    events: [fail("protocol", h("05 ff"))],
    state: "closed",
  },
  // ---- SOCKS5, refused requests ----
  {
    name: "socks5 BIND -> 07",
    input: cat(GREET_NOAUTH, h("05 02 00 01 7f000001 1f90")),
    events: [SEND_00, fail("commandNotSupported", h("05 07 00 01 00 00 00 00 00 00"))],
    state: "closed",
  },
  {
    name: "socks5 UDP ASSOCIATE -> 07",
    input: cat(GREET_NOAUTH, h("05 03 00 01 00000000 0000")),
    events: [SEND_00, fail("commandNotSupported", h("05 07 00 01 00 00 00 00 00 00"))],
    state: "closed",
  },
  {
    name: "socks5 unknown CMD 0x09 -> 07",
    input: cat(GREET_NOAUTH, cat(h("05 09 00 03 01"), a("x"), h("0050"))),
    events: [SEND_00, fail("commandNotSupported", REPLY5(7))],
    state: "closed",
  },
  {
    name: "socks5 unknown ATYP 0x02 -> 08 at once",
    input: cat(GREET_NOAUTH, h("05 01 00 02")),
    events: [SEND_00, fail("addressTypeNotSupported", REPLY5(8))],
    state: "closed",
  },
  {
    name: "socks5 empty domain -> 01",
    input: cat(GREET_NOAUTH, h("05 01 00 03 00 0050")),
    events: [SEND_00, fail("protocol", REPLY5(1))],
    state: "closed",
  },
  {
    name: "socks5 domain with a control byte -> 01",
    input: cat(GREET_NOAUTH, h("05 01 00 03 04 61 0a 62 63 0050")),
    events: [SEND_00, fail("protocol", REPLY5(1))],
    state: "closed",
  },
  {
    name: "socks5 request with VER 4 -> 01 (the greeting settled the version)",
    input: cat(GREET_NOAUTH, REQ_V4.map((x, i) => (i === 0 ? 4 : x))),
    events: [SEND_00, fail("protocol", REPLY5(1))],
    state: "closed",
  },
  // ---- SOCKS4 / 4a ----
  {
    name: "socks4 CONNECT with USERID",
    input: cat(h("04 01 0050 7f000201"), a("bob"), h("00")),
    events: [connect4("ipv4", "127.0.2.1", 80, "bob")],
    state: "connecting",
    success: { address: "127.0.0.7", port: 40000, reply: h("00 5a 9c40 7f000007") },
  },
  {
    name: "socks4 CONNECT, empty USERID, bound IPv6 -> zero DSTIP",
    input: h("04 01 01bb 7f000001 00"),
    events: [connect4("ipv4", "127.0.0.1", 443)],
    state: "connecting",
    success: { address: "::1", port: 443, reply: h("00 5a 01bb 00000000") },
  },
  {
    name: "socks4a domain",
    input: cat(h("04 01 0050 00000001"), a("u"), h("00"), a("example.com"), h("00")),
    events: [connect4("domain", "example.com", 80, "u")],
    state: "connecting",
  },
  {
    name: "socks4 USERID of 255 bytes is accepted",
    input: cat(h("04 01 0050 7f000001"), a("u".repeat(255)), h("00")),
    events: [connect4("ipv4", "127.0.0.1", 80, "u".repeat(255))],
    state: "connecting",
  },
  {
    name: "socks4 BIND -> 5B",
    input: h("04 02 0050 7f000001 00"),
    events: [fail("commandNotSupported", REPLY4_FAIL)],
    state: "closed",
  },
  {
    name: "socks4 CD 3 -> 5B protocol",
    input: h("04 03 0050 7f000001 00"),
    events: [fail("protocol", REPLY4_FAIL)],
    state: "closed",
  },
  {
    name: "socks4 USERID of 256 bytes -> 5B",
    input: cat(h("04 01 0050 7f000001"), a("u".repeat(256)), h("00")),
    events: [fail("protocol", REPLY4_FAIL)],
    state: "closed",
  },
  {
    name: "socks4a domain of 256 bytes -> 5B",
    input: cat(h("04 01 0050 00000001 00"), a("d".repeat(256)), h("00")),
    events: [fail("protocol", REPLY4_FAIL)],
    state: "closed",
  },
  {
    name: "socks4a empty domain -> 5B",
    input: h("04 01 0050 000000ff 00 00"),
    events: [fail("protocol", REPLY4_FAIL)],
    state: "closed",
  },
  {
    name: "socks4 while auth is configured -> 5B authFailed",
    options: AUTH,
    input: cat(h("04 01 0050 7f000001"), a("alice"), h("00")),
    events: [fail("authFailed", REPLY4_FAIL)],
    state: "closed",
  },
  // ---- not SOCKS ----
  {
    name: "HTTP request on the SOCKS port -> close without reply",
    input: a("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    events: [fail("protocol", null)],
    state: "closed",
  },
  {
    name: "HTTP CONNECT on the SOCKS port -> close without reply",
    input: a("CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
    events: [fail("protocol", null)],
    state: "closed",
  },
  {
    name: "TLS ClientHello on the SOCKS port -> close without reply",
    input: h("16 03 01 00 05 01 00 00 01 00"),
    events: [fail("protocol", null)],
    state: "closed",
  },
];

type Feeding = (m: SocksMachine, input: Uint8Array) => SocksEvent[];
const FEEDINGS: [string, Feeding, boolean][] = [
  ["whole", (m, input) => m.feed(input), false],
  ["byte by byte", (m, input) => [...input].flatMap((x) => m.feed(Uint8Array.of(x))), false],
  ["coalesced with early data", (m, input) => m.feed(cat(input, EARLY)), true],
];

describe("socks wire vectors", () => {
  for (const v of VECTORS) {
    for (const [how, feedBy, early] of FEEDINGS) {
      test(`${v.name} [${how}]`, () => {
        const m = createSocksMachine(v.options ?? NO_AUTH);
        const events = feedBy(m, v.input);
        expect(events).toEqual(v.events as SocksEvent[]);
        expect(m.state).toBe(v.state);
        expect(m.feed(a("more"))).toEqual([]); // settled: further input is kept, never parsed
        const rest = m.takeRest();
        if (v.state === "connecting") {
          expect(rest).toEqual(cat(early ? EARLY : new Uint8Array(0), a("more")));
          expect(m.takeRest()).toEqual(new Uint8Array(0));
        } else {
          expect(rest.subarray(rest.length - 4)).toEqual(a("more"));
        }
        if (v.success) {
          expect(m.success(v.success)).toEqual(v.success.reply);
          expect(m.state).toBe("established");
        }
      });
    }
  }
});

describe("failure(kind) replies match ERROR_TABLE", () => {
  const kinds = Object.keys(ERROR_TABLE) as ErrorKind[];
  for (const kind of kinds) {
    test(`socks5 ${kind}`, () => {
      const m = createSocksMachine(NO_AUTH);
      m.feed(cat(GREET_NOAUTH, REQ_V4));
      const rep = ERROR_TABLE[kind].socks5;
      expect(m.failure(kind)).toEqual(rep === null ? null : REPLY5(rep));
      expect(m.state).toBe("closed");
    });
    test(`socks4 ${kind}`, () => {
      const m = createSocksMachine(NO_AUTH);
      m.feed(h("04 01 0050 7f000001 00"));
      expect(m.failure(kind)).toEqual(h(`00 ${ERROR_TABLE[kind].socks4.toString(16)} 0000 00000000`));
      expect(m.state).toBe("closed");
    });
  }
});

describe("machine contract", () => {
  test("partial input returns [] and keeps state", () => {
    const m = createSocksMachine(NO_AUTH);
    expect(m.state).toBe("awaitVersion");
    expect(m.feed(h("05"))).toEqual([]);
    expect(m.state).toBe("awaitGreeting");
    expect(m.feed(h("01 00 05 01"))).toEqual([SEND_00 as SocksEvent]);
    expect(m.state).toBe("awaitRequest");
  });
  test("auth state is awaitAuth between greeting and RFC 1929", () => {
    const m = createSocksMachine(AUTH);
    m.feed(h("05 01 02 01"));
    expect(m.state).toBe("awaitAuth");
  });
  test("success() before connect is a driver bug: ProxyError internal", () => {
    const m = createSocksMachine(NO_AUTH);
    expect(() => m.success({ address: "127.0.0.4", port: 1 })).toThrow(ProxyError);
    m.feed(GREET_NOAUTH);
    expect(() => m.success({ address: "127.0.0.4", port: 1 })).toThrow(/awaitRequest/);
  });
  test("failure() before a request can be answered closes without a reply", () => {
    const m = createSocksMachine(NO_AUTH);
    expect(m.failure("limitExceeded")).toBeNull();
    expect(m.state).toBe("closed");
    const m5 = createSocksMachine(AUTH);
    m5.feed(h("05 01 02"));
    expect(m5.failure("handshakeTimeout")).toBeNull();
  });
  test("a throwing verify() becomes fail internal, not an exception", () => {
    const m = createSocksMachine({ auth: { verify: () => { throw new Error("boom"); } }, maxUserIdBytes: 255 });
    const events = m.feed(cat(h("05 01 02"), RFC1929("a", "b")));
    expect(events).toEqual([SEND_02, fail("internal", h("01 01"))] as SocksEvent[]);
  });
  test("RFC 1929 with the real verifier: non-ASCII credentials in UTF-8 or ISO-8859-1 (Java's SOCKS5 client) pass", () => {
    const verify = createVerifier({ username: "jürgen", password: "pässword" });
    const octets = (user: Uint8Array, pass: Uint8Array) => cat(h("05 01 02"), Uint8Array.of(0x01, user.length), user, Uint8Array.of(pass.length), pass, REQ_V4);
    const latin1 = (t: string) => Uint8Array.from(t, (c) => c.charCodeAt(0));
    for (const [user, pass] of [[a("jürgen"), a("pässword")], [latin1("jürgen"), latin1("pässword")]]) {
      const events = createSocksMachine({ auth: { verify }, maxUserIdBytes: 255 }).feed(octets(user!, pass!));
      expect(events.slice(0, 2)).toEqual([SEND_02, AUTH_OK] as SocksEvent[]);
      expect(events[2]?.type).toBe("connect");
    }
    const wrong = createSocksMachine({ auth: { verify }, maxUserIdBytes: 255 }).feed(octets(latin1("jürgen"), latin1("passwörd")));
    expect(wrong).toEqual([SEND_02, fail("authFailed", h("01 01"))] as SocksEvent[]);
  });
  test("detail never carries credentials", () => {
    const m = createSocksMachine(AUTH);
    const events = m.feed(cat(GREET_BOTH, RFC1929("alice", "hunter2")));
    const last = events[events.length - 1]!;
    expect(last.type === "fail" && !/alice|hunter2/.test(last.detail)).toBe(true);
  });
  test("a smaller USERID limit is enforced", () => {
    const m = createSocksMachine({ auth: null, maxUserIdBytes: 3 });
    expect(m.feed(cat(h("04 01 0050 7f000001"), a("abcd")))).toEqual([fail("protocol", REPLY4_FAIL)] as SocksEvent[]);
  });
});

describe("parseIPv4 (BND.ADDR of every reply)", () => {
  /** The definition it implements, as it was written before the one-pass version. */
  function reference(text: string): Uint8Array | null {
    const parts = text.split(".");
    if (parts.length !== 4) return null;
    const out = new Uint8Array(4);
    for (let i = 0; i < 4; i++) {
      if (!/^\d{1,3}$/.test(parts[i]!)) return null;
      const n = Number(parts[i]);
      if (n > 255) return null;
      out[i] = n;
    }
    return out;
  }

  test("agrees with split-and-regex on listed and generated strings", () => {
    const listed = ["127.0.0.1", "0.0.0.0", "255.255.255.255", "256.0.0.1", "1.2.3", "1.2.3.4.", ".1.2.3", "1..2.3", "01.002.3.4", "0255.1.1.1", "0001.2.3.4", "1234.1.1.1", "", "::1", "1.2.3.4 ", "1.2.3.+4", "1.2.3.٤", "::ffff:127.0.0.1"];
    for (const text of listed) expect({ text, got: parseIPv4(text) }).toEqual({ text, got: reference(text) });
    let seed = 0x2545f491;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const alphabet = "0123456789....:a ";
    for (let i = 0; i < 20_000; i++) {
      let text = "";
      if (rand() < 0.5) {
        // Dotted forms: 3-5 parts of 0-4 digits.
        const parts: string[] = [];
        for (let p = 3 + Math.floor(rand() * 3); p > 0; p--) parts.push(String(Math.floor(rand() * 10 ** Math.floor(rand() * 5))).slice(0, Math.floor(rand() * 5)));
        text = parts.join(".");
      } else {
        for (let n = Math.floor(rand() * 16); n > 0; n--) text += alphabet[Math.floor(rand() * alphabet.length)];
      }
      expect({ text, got: parseIPv4(text) }).toEqual({ text, got: reference(text) });
    }
  });
});

describe("describeReply: a reply as logs print it, in the RFC's words", () => {
  test("every SOCKS5 REP, every SOCKS4 CD, a method selection and an RFC 1929 status", () => {
    const rep = (code: number) => Uint8Array.of(0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((code) => describeReply(rep(code)))).toEqual([
      "REP 0x00 (succeeded)",
      "REP 0x01 (general SOCKS server failure)",
      "REP 0x02 (connection not allowed by ruleset)",
      "REP 0x03 (Network unreachable)",
      "REP 0x04 (Host unreachable)",
      "REP 0x05 (Connection refused)",
      "REP 0x06 (TTL expired)",
      "REP 0x07 (Command not supported)",
      "REP 0x08 (Address type not supported)",
      "REP 0x09 (unassigned)",
    ]);
    const cd = (code: number) => Uint8Array.of(0x00, code, 0, 0, 0, 0, 0, 0);
    expect([0x5a, 0x5b, 0x5c, 0x5d].map((code) => describeReply(cd(code)))).toEqual([
      "CD 0x5a (request granted)",
      "CD 0x5b (request rejected or failed)",
      "CD 0x5c (request rejected because SOCKS server cannot connect to identd on the client)",
      "CD 0x5d (request rejected because the client program and identd report different user-ids)",
    ]);
    expect(describeReply(Uint8Array.of(0x05, 0xff))).toBe("METHOD 0xff (no acceptable methods)");
    expect(describeReply(Uint8Array.of(0x01, 0x01))).toBe("RFC 1929 STATUS 0x01 (failure)");
  });

  test("every reply the machines send for a failure is one of those, named", () => {
    for (const kind of Object.keys(ERROR_TABLE) as ErrorKind[]) {
      for (const options of [{ auth: null }, AUTH] as SocksOptions[]) {
        const m = createSocksMachine(options);
        m.feed(options.auth ? cat(GREET_BOTH, RFC1929("alice", "hunter2")) : cat(GREET_NOAUTH, h("05 01 00 01 7f000001 0050")));
        const reply = m.state === "connecting" ? m.failure(kind) : null;
        if (reply) expect(describeReply(reply)).not.toContain("unassigned");
      }
    }
  });
});
