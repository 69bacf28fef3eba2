/**
 * Address policy (lib/policy.ts) as pure functions: `--allow-clients` and `--deny-destinations`
 * matching for IPv4, IPv6 and IPv4-mapped IPv6, bare addresses, the `private` preset, and
 * malformed entries. Addresses here are strings handed to pure functions, nothing is dialled, and
 * the test names no address outside 127.0.0.0/8, ::1 and the never-routed ::/96: the preset's
 * other ranges are checked with addresses computed from the preset at run time.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MATCH_CACHE_MAX, PRIVATE_PRESET, createMatcher, parseNet } from "../lib/policy.ts";

function matches(entries: string[], address: string): boolean {
  return createMatcher(entries)(address);
}

describe("createMatcher: IPv4", () => {
  test("CIDR boundaries", () => {
    // Networks inside 127.0.0.0/8: matcher tests never name an address anything could dial.
    const m = createMatcher(["127.16.0.0/12", "127.0.1.0/24"]);
    for (const a of ["127.16.0.0", "127.16.0.1", "127.31.255.255", "127.0.1.0", "127.0.1.255"]) expect(m(a), a).toBe(true);
    for (const a of ["127.15.255.255", "127.32.0.0", "127.0.0.255", "127.0.2.0", "127.1.2.3"]) expect(m(a), a).toBe(false);
  });

  test("a bare address is a /32", () => {
    const m = createMatcher(["127.0.0.2"]);
    expect(m("127.0.0.2")).toBe(true);
    expect(m("127.0.0.1")).toBe(false);
    expect(m("127.0.0.3")).toBe(false);
  });

  test("/0 matches every IPv4 address, /32 exactly one", () => {
    expect(matches(["0.0.0.0/0"], "127.200.0.7")).toBe(true);
    expect(matches(["127.0.0.7/32"], "127.0.0.7")).toBe(true);
    expect(matches(["127.0.0.7/32"], "127.0.0.6")).toBe(false);
  });

  test("a CIDR with host bits set still means its network", () => {
    expect(matches(["127.1.2.3/16"], "127.1.200.1")).toBe(true);
  });

  test("an IPv4 network never matches an IPv6 address", () => {
    expect(matches(["0.0.0.0/0"], "::1")).toBe(false);
    expect(matches(["0.0.0.0/0"], "::")).toBe(false);
  });
});

describe("createMatcher: IPv6", () => {
  test("CIDR boundaries", () => {
    // Inside ::/96 apart from ::1: the deprecated IPv4-compatible block, which nothing routes.
    const m = createMatcher(["::100/120"]);
    expect(m("::100")).toBe(true);
    expect(m("::1ff")).toBe(true);
    expect(m("0:0:0:0:0:0:0:180")).toBe(true);
    expect(m("::ff")).toBe(false);
    expect(m("::200")).toBe(false);
  });

  test("a bare address is a /128, whatever its spelling", () => {
    const m = createMatcher(["::1"]);
    expect(m("::1")).toBe(true);
    expect(m("0:0:0:0:0:0:0:1")).toBe(true);
    expect(m("[::1]")).toBe(true);
    expect(m("::2")).toBe(false);
  });

  test("a zone id is ignored (::1%lo is ::1)", () => {
    expect(matches(["::1"], "::1%lo")).toBe(true);
  });

  test("an IPv6 network never matches a plain IPv4 address", () => {
    expect(matches(["::/0"], "127.0.0.1")).toBe(false);
    expect(matches(["::/96"], "127.0.0.1")).toBe(false);
  });
});

describe("createMatcher: IPv4-mapped IPv6 is matched as the IPv4 address it carries", () => {
  test("::ffff:127.0.0.1 (how a :: listener reports an IPv4 client) matches 127.0.0.0/8", () => {
    const m = createMatcher(["127.0.0.0/8"]);
    expect(m("::ffff:127.0.0.1")).toBe(true);
    expect(m("::ffff:7f00:1")).toBe(true); // the same address in hex
    expect(m("0:0:0:0:0:ffff:7f00:2")).toBe(true);
    expect(m("[::ffff:127.0.0.1]")).toBe(true);
    expect(matches(["127.0.0.0/16"], "::ffff:127.1.0.1")).toBe(false);
  });

  test("a mapped entry matches the plain IPv4 address, and vice versa", () => {
    expect(matches(["::ffff:127.0.0.1"], "127.0.0.1")).toBe(true);
    expect(matches(["::ffff:127.0.0.1"], "127.0.0.2")).toBe(false);
    expect(matches(["::ffff:127.0.0.1"], "::ffff:127.0.0.1")).toBe(true);
    expect(matches(["127.0.0.1"], "::ffff:127.0.0.1")).toBe(true);
  });

  test("a mapped network is the IPv4 network: ::ffff:127.16.0.0/108 == 127.16.0.0/12, ::ffff:0:0/96 == every IPv4", () => {
    expect(matches(["::ffff:127.16.0.0/108"], "127.16.9.9")).toBe(true);
    expect(matches(["::ffff:127.16.0.0/108"], "::ffff:127.16.9.9")).toBe(true);
    expect(matches(["::ffff:127.16.0.0/108"], "127.32.0.0")).toBe(false);
    expect(matches(["::ffff:0:0/96"], "127.51.100.1")).toBe(true);
    expect(parseNet("::ffff:127.16.0.0/108").correctForm()).toBe("127.16.0.0");
    expect(parseNet("::ffff:127.16.0.0/108").subnetMask).toBe(12);
  });

  test("an allow list of ::1 does not admit IPv4 loopback (they are different hosts)", () => {
    expect(matches(["::1"], "127.0.0.1")).toBe(false);
    expect(matches(["::1"], "::ffff:127.0.0.1")).toBe(false);
  });
});

describe("createMatcher: addresses that are not addresses never match", () => {
  test.each(["", "localhost", "not-an-ip", "127.0.0.1:80", "127.0.1", "300.1.1.1", "::g"])("%p", (a) => {
    expect(matches(["0.0.0.0/0", "::/0"], a)).toBe(false);
  });
});

describe("createMatcher remembers its answers", () => {
  test("each address keeps its own answer, asked again and again, past the cache's bound", () => {
    const m = createMatcher(["127.0.0.0/25", "127.0.3.128/25", "127.0.5.0/24", "::1"]);
    // More distinct addresses than the cache holds: 127.0.C.D, inside for C 0 and D < 128,
    // C 3 and D >= 128, or C 5.
    const count = 2 * MATCH_CACHE_MAX + 37;
    const addresses = Array.from({ length: count }, (_, i) => `127.0.${i >> 8}.${i & 255}`);
    const expected = addresses.map((_, i) => (i >> 8 === 0 && (i & 255) < 128) || (i >> 8 === 3 && (i & 255) >= 128) || i >> 8 === 5);
    for (let round = 0; round < 3; round++) {
      const got = addresses.map((a) => m(a));
      expect(got).toEqual(expected);
      // Interleaved with other spellings of other hosts: a cached answer is never another's.
      expect(m("::1")).toBe(true);
      expect(m("::ffff:127.0.5.1")).toBe(true);
      expect(m("::ffff:127.0.1.1")).toBe(false);
      expect(m("not-an-ip")).toBe(false);
    }
  });
});

describe("malformed entries throw (naming the entry), so a typo never opens or closes everything", () => {
  test.each(["", " ", "abc", "127.0.0.0/33", "127.0.0.0/", "127.0.0.1/-1", "127.0.0.1/8x", "300.1.1.1", "127.0.1", "0127.0.0.1", "::1/129", "::g", "127.0.0.1,127.0.0.2", "privat"])("%p", (entry) => {
    expect(() => createMatcher([entry])).toThrow(JSON.stringify(entry));
  });

  test("one bad entry among good ones still throws", () => {
    expect(() => createMatcher(["127.0.0.0/8", "nope", "::1"])).toThrow('"nope"');
  });

  test("an empty list matches nothing", () => {
    expect(matches([], "127.0.0.1")).toBe(false);
    expect(matches([], "::1")).toBe(false);
  });
});

describe("the private preset (--deny-destinations private)", () => {
  const priv = createMatcher(["private"]);

  test("is exactly what the README documents (the contract; the ranges themselves are named only there and in lib/policy.ts)", () => {
    const readme = readFileSync(join(import.meta.dir, "..", "README.md"), "utf8");
    const documented = /`private` = `([^`]+)`/.exec(readme);
    expect(documented, "README: `private` = `...`").not.toBeNull();
    expect([...PRIVATE_PRESET]).toEqual(documented![1]!.split(/\s+/).filter(Boolean));
    for (const entry of PRIVATE_PRESET) expect(() => parseNet(entry)).not.toThrow();
  });

  test("loopback is inside, in every spelling", () => {
    for (const a of ["127.0.0.1", "127.255.255.254", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1", "::127.0.0.1", "::7f00:1"]) expect(priv(a), a).toBe(true);
  });

  // The addresses below are computed from the preset's ranges at run time and handed to the pure
  // matcher only: the test names none, and nothing here opens a socket.
  const ranges = PRIVATE_PRESET.map(cidrRange);
  const inPreset = (family: 4 | 6, n: bigint) => ranges.some((r) => r.family === family && n >= r.first && n <= r.last);

  test("every range is matched at its first and last address; the addresses just outside only when another range covers them", () => {
    let outsideChecked = 0;
    for (const r of ranges) {
      for (const n of [r.first, r.last]) expect(priv(text(r.family, n)), `${text(r.family, n)} in ${r.cidr}`).toBe(true);
      for (const n of [r.first - 1n, r.last + 1n]) {
        if (n < 0n || n > maxOf(r.family)) continue;
        expect(priv(text(r.family, n)), `${text(r.family, n)} next to ${r.cidr}`).toBe(inPreset(r.family, n));
        if (!inPreset(r.family, n)) outsideChecked++;
      }
    }
    expect(outsideChecked).toBeGreaterThan(ranges.length); // most neighbours are public: the check is not vacuous
  });

  test("an IPv4 range is matched alike when written IPv4-mapped, IPv4-compatible, NAT64 (RFC 6052) or 6to4 (RFC 3056), and its public neighbours are not", () => {
    for (const r of ranges.filter((x) => x.family === 4)) {
      for (const n of [r.first, r.last, r.first - 1n, r.last + 1n]) {
        if (n < 0n || n > maxOf(4)) continue;
        const expected = inPreset(4, n);
        for (const form of carriedForms(n)) expect(priv(form), `${form} (${text(4, n)})`).toBe(expected);
      }
    }
  });

  test("the word is case-insensitive, trimmed, and combines with other entries", () => {
    expect(matches(["PRIVATE"], "127.0.0.1")).toBe(true);
    expect(matches([" private "], "::1")).toBe(true);
    // Combined with another entry (written IPv4-mapped): the preset and the entry both apply.
    const m = createMatcher(["private", "::ffff:127.0.0.9/128"]);
    expect(m("127.0.0.9")).toBe(true);
    expect(m("::1")).toBe(true);
    expect(m("not-an-ip")).toBe(false);
  });
});

// ---- address arithmetic for the preset tests (independent of ip-address, which policy.ts uses) ----

interface Range {
  readonly cidr: string;
  readonly family: 4 | 6;
  readonly first: bigint;
  readonly last: bigint;
}

const maxOf = (family: 4 | 6): bigint => (1n << (family === 4 ? 32n : 128n)) - 1n;

function cidrRange(cidr: string): Range {
  const [addr, len] = cidr.split("/") as [string, string];
  const family = addr.includes(":") ? 6 : 4;
  const bits = family === 4 ? 32n : 128n;
  const hostBits = bits - BigInt(len);
  const first = (parse(family, addr) >> hostBits) << hostBits;
  return { cidr, family, first, last: first + (1n << hostBits) - 1n };
}

function parse(family: 4 | 6, addr: string): bigint {
  if (family === 4) return addr.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  const [head, tail] = addr.includes("::") ? addr.split("::") : [addr, undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Dotted quad, or all eight IPv6 groups (no "::"), for the matcher to parse. */
function text(family: 4 | 6, n: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join(".");
  return Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(":");
}

/** The IPv6 spellings that carry IPv4 address n: mapped (dotted and hex), NAT64, 6to4. */
function carriedForms(n: bigint): string[] {
  const hi = ((n >> 16n) & 0xffffn).toString(16);
  const lo = (n & 0xffffn).toString(16);
  const forms = [`::ffff:${text(4, n)}`, `::ffff:${hi}:${lo}`, `64:ff9b::${text(4, n)}`, `64:ff9b::${hi}:${lo}`, `2002:${hi}:${lo}::1`];
  // IPv4-compatible (RFC 4291 §2.5.5.1, deprecated): ::a.b.c.d with a first octet other than 0
  // (::, ::1 and ::0.x.y.z stay IPv6).
  if (n >= 1n << 24n) forms.push(`::${text(4, n)}`, `::${hi}:${lo}`);
  return forms;
}
