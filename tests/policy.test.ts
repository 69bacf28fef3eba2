/**
 * Address policy (lib/policy.ts) as pure functions: `--allow-clients` and `--deny-destinations`
 * matching for IPv4, IPv6 and IPv4-mapped IPv6, bare addresses, the `private` preset, and
 * malformed entries. Addresses here are strings only: nothing is dialled (the e2e tests use
 * loopback addresses exclusively).
 */
import { describe, expect, test } from "bun:test";
import { PRIVATE_PRESET, createMatcher, parseNet } from "../lib/policy.ts";

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
    const m = createMatcher(["2001:db8::/32"]);
    expect(m("2001:db8::1")).toBe(true);
    expect(m("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    expect(m("2001:db9::1")).toBe(false);
    expect(m("2001:db7:ffff::1")).toBe(false);
  });

  test("a bare address is a /128, whatever its spelling", () => {
    const m = createMatcher(["::1"]);
    expect(m("::1")).toBe(true);
    expect(m("0:0:0:0:0:0:0:1")).toBe(true);
    expect(m("[::1]")).toBe(true);
    expect(m("::2")).toBe(false);
  });

  test("a zone id is ignored (fe80::1%eth0 is link-local)", () => {
    expect(matches(["fe80::/10"], "fe80::1%eth0")).toBe(true);
  });

  test("an IPv6 network never matches a plain IPv4 address", () => {
    expect(matches(["2001:db8::/32"], "32.1.13.184")).toBe(false);
  });
});

describe("createMatcher: IPv4-mapped IPv6 is matched as the IPv4 address it carries", () => {
  test("::ffff:127.0.0.1 (how a :: listener reports an IPv4 client) matches 127.0.0.0/8", () => {
    const m = createMatcher(["127.0.0.0/8"]);
    expect(m("::ffff:127.0.0.1")).toBe(true);
    expect(m("::ffff:7f00:1")).toBe(true); // the same address in hex
    expect(m("0:0:0:0:0:ffff:7f00:2")).toBe(true);
    expect(m("[::ffff:127.0.0.1]")).toBe(true);
    expect(m("::ffff:128.0.0.1")).toBe(false);
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

  test("covers loopback, link-local (cloud metadata), RFC 1918, CGNAT, this-network, IPv6 loopback/ULA/link-local", () => {
    const inside = [
      // loopback
      "127.0.0.1",
      "127.255.255.254",
      "::1",
      // "this network" / unspecified
      "0.0.0.0",
      "::",
      // link-local, incl. the cloud metadata service
      "169.254.169.254",
      "169.254.0.1",
      "fe80::1",
      "febf:ffff::1",
      // RFC 1918
      "10.0.0.1",
      "10.255.255.255",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.0.1",
      "192.168.255.255",
      // RFC 6598 shared address space (CGNAT, some cluster networks)
      "100.64.0.1",
      "100.127.255.255",
      // ULA fc00::/7
      "fc00::1",
      "fd12:3456:789a::1",
      "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      // the same IPv4 ranges written as IPv4-mapped IPv6
      "::ffff:127.0.0.1",
      "::ffff:169.254.169.254",
      "::ffff:a9fe:a9fe",
      "::ffff:10.1.2.3",
      "::ffff:192.168.1.1",
    ];
    for (const a of inside) expect(priv(a), `${a} must be denied by the private preset`).toBe(true);
  });

  test("leaves the public internet alone (including the neighbours of every private range)", () => {
    const outside = [
      "8.8.8.8",
      "1.1.1.1",
      "9.255.255.255",
      "11.0.0.0",
      "126.255.255.255",
      "128.0.0.0",
      "172.15.255.255",
      "172.32.0.0",
      "192.167.255.255",
      "192.169.0.0",
      "169.253.255.255",
      "169.255.0.0",
      "100.63.255.255",
      "100.128.0.0",
      "2001:4860:4860::8888",
      "2001:4860::",
      "2606:4700:4700::1111",
      "fbff:ffff::1",
      "fec0::1",
      "::2",
      "::ffff:8.8.8.8",
    ];
    for (const a of outside) expect(priv(a), `${a} must not be denied by the private preset`).toBe(false);
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

  test("every preset entry parses and the documented ranges are all there", () => {
    for (const entry of PRIVATE_PRESET) expect(() => parseNet(entry)).not.toThrow();
    for (const must of ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10"]) {
      expect(PRIVATE_PRESET).toContain(must);
    }
  });
});

describe("IPv6 forms that carry IPv4 are matched as that IPv4 (strings only, never dialled)", () => {
  const privateNets = createMatcher(["private"]);
  test.each([
    ["64:ff9b::a9fe:a9fe", true], // NAT64 (RFC 6052) of 169.254.169.254
    ["64:ff9b::10.1.2.3", true], // NAT64 of 10.1.2.3, dotted tail
    ["2002:a9fe:a9fe::1", true], // 6to4 (RFC 3056) of 169.254.169.254
    ["2002:c0a8:0101::", true], // 6to4 of 192.168.1.1
    ["64:ff9b::808:808", false], // NAT64 of 8.8.8.8: public, not denied
    ["2002:808:808::1", false], // 6to4 of 8.8.8.8
  ] as const)("%s -> private %p", (address, expected) => {
    expect(privateNets(address)).toBe(expected);
  });
});
