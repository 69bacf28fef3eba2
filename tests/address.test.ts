/**
 * lib/address.ts isIP: the same answer as node:net's isIP (which the proxy used to import, at
 * ~10 ms of start-up), on known vectors and on a bounded, seeded random sample of near-literals.
 */
import { describe, expect, test } from "bun:test";
import { prng } from "./helpers/fuzz.ts";
import { isIP as nodeIsIP } from "node:net";
import { dialledAddress, isIP } from "../lib/address.ts";

const VECTORS = [
  "", "1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.4 ", " 1.2.3.4",
  "1..2.3", "127.0.0.1", "::", "::1", "1::", "fe80::1%eth0", "fe80::1%", "::ffff:1.2.3.4", "::ffff:1.2.3.256",
  "64:ff9b::192.0.2.1", "2001:db8::1", "2001:db8:0:0:0:0:0:1", "2001:db8:0:0:0:0:0:0:1", "2001:db8::1::1", ":::",
  "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "12345::", "g::1", "[::1]",
  "::1/128", "localhost", "example.com", "1.2.3.4%eth0", "FE80::ABCD", "::%1", "fe80::1%en0.1-a:b",
];


describe("isIP", () => {
  test("known vectors: as node:net", () => {
    for (const v of VECTORS) expect([v, isIP(v)]).toEqual([v, nodeIsIP(v)]);
    expect(isIP("1.2.3.4")).toBe(4);
    expect(isIP("fe80::1%eth0")).toBe(6);
    expect(isIP("01.2.3.4")).toBe(0);
  });

  test("50 000 random near-literals: as node:net", () => {
    const next = prng(20261128);
    const alphabet = "0123456789abcdefABCDEFg.:%-/ ";
    const pieces = ["::", ":", ".", "255", "256", "0", "00", "ffff", "1.2.3.4", "%eth0", "fe80", "12345"];
    let fours = 0;
    let sixes = 0;
    for (let i = 0; i < 50_000; i++) {
      let s = "";
      const n = 1 + Math.floor(next() * 12);
      for (let j = 0; j < n; j++) s += next() < 0.5 ? pieces[Math.floor(next() * pieces.length)] : alphabet[Math.floor(next() * alphabet.length)];
      const want = nodeIsIP(s);
      if (isIP(s) !== want) expect([s, isIP(s)]).toEqual([s, want]);
      if (want === 4) fours++;
      if (want === 6) sixes++;
    }
    // The sample reaches both families, so agreement is not only on garbage.
    expect(fours).toBeGreaterThan(50);
    expect(sixes).toBeGreaterThan(50);
  });
});

describe("dialledAddress: where Linux connects a socket addressed to the unspecified address", () => {
  test("0.0.0.0 and ::ffff:0.0.0.0 are 127.0.0.1, :: in any spelling is ::1; everything else is itself", () => {
    for (const a of ["0.0.0.0", "::ffff:0.0.0.0", "::FFFF:0:0", "0:0:0:0:0:ffff:0.0.0.0"]) expect(dialledAddress(a), a).toBe("127.0.0.1");
    for (const a of ["::", "::0", "0::0", "0:0:0:0:0:0:0:0", "::0.0.0.0", "::%1"]) expect(dialledAddress(a), a).toBe("::1");
    for (const a of ["127.0.0.1", "0.0.0.1", "0.1.0.0", "::1", "::ffff:0.0.0.1", "::ffff:127.0.0.1", "ffff::", "f::", "::f", "::ffff", "fe80::1%eth0", "localhost", "0.0.0.0.invalid"]) {
      expect(dialledAddress(a), a).toBe(a);
    }
  });
});
