/**
 * lib/auth.ts: the credentials compare answers exactly "both equal", on vectors that probe
 * lengths (prefixes, extensions, repeats of the secret, empty) and on a bounded, seeded random
 * sample checked against plain string equality.
 */
import { describe, expect, test } from "bun:test";
import { prng } from "./helpers/fuzz.ts";
import { createVerifier as verifierOfOctets } from "../lib/auth.ts";

const utf8 = new TextEncoder();
/** The verifier asked as clients that send UTF-8 ask it (curl, Go, undici). */
function createVerifier(auth: { username: string; password: string }): (username: string, password: string) => boolean {
  const verify = verifierOfOctets(auth);
  return (u, p) => verify(utf8.encode(u), utf8.encode(p));
}
/** ISO-8859-1 octets of a string whose characters are all at most U+00FF. */
const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

describe("createVerifier", () => {
  test("accepts exactly the configured pair", () => {
    const verify = createVerifier({ username: "alice", password: "s3cret" });
    expect(verify("alice", "s3cret")).toBe(true);
    expect(verify("alice", "s3creT")).toBe(false);
    expect(verify("alicE", "s3cret")).toBe(false);
    expect(verify("bob", "s3cret")).toBe(false);
    expect(verify("alice", "")).toBe(false);
    expect(verify("", "")).toBe(false);
  });

  test("a length difference is a mismatch: prefixes, extensions, the secret repeated", () => {
    const verify = createVerifier({ username: "ab", password: "xy" });
    for (const p of ["", "x", "xyx", "xyxy", "xy\0", "\0xy", "xyxyxyxy"]) expect([p, verify("ab", p)]).toEqual([p, false]);
    for (const u of ["", "a", "aba", "abab"]) expect([u, verify(u, "xy")]).toEqual([u, false]);
    expect(verify("ab", "xy")).toBe(true);
  });

  test("an empty secret matches only an empty answer", () => {
    const verify = createVerifier({ username: "u", password: "" });
    expect(verify("u", "")).toBe(true);
    for (const p of ["\0", "\0\0", "a"]) expect([p, verify("u", p)]).toEqual([p, false]);
  });

  test("compares UTF-8 bytes: non-ASCII credentials", () => {
    const verify = createVerifier({ username: "ürsula", password: "пароль🔑" });
    expect(verify("ürsula", "пароль🔑")).toBe(true);
    expect(verify("ursula", "пароль🔑")).toBe(false);
    expect(verify("ürsula", "пароль")).toBe(false);
  });

  test("agrees with string equality on 20 000 seeded random pairs", () => {
    const next = prng(7);
    const alphabet = ["a", "b", "\0", "é", "🔑"];
    const word = () => Array.from({ length: Math.floor(next() * 5) }, () => alphabet[Math.floor(next() * alphabet.length)]).join("");
    let matches = 0;
    for (let i = 0; i < 20_000; i++) {
      const [u, p, gu, gp] = [word(), word(), word(), word()];
      const expected = u === gu && p === gp;
      if (expected) matches++;
      expect(createVerifier({ username: u, password: p })(gu, gp)).toBe(expected);
    }
    expect(matches).toBeGreaterThan(10); // the sample does reach the equal case
  });

  test("ISO-8859-1 octets of the configured credentials are accepted too (Python requests, Java's SOCKS5 client send them)", () => {
    const verify = verifierOfOctets({ username: "jürgen", password: "pässword" });
    expect(verify(latin1("jürgen"), latin1("pässword"))).toBe(true);
    expect(verify(utf8.encode("jürgen"), utf8.encode("pässword"))).toBe(true);
    expect(verify(latin1("jürgen"), utf8.encode("pässword"))).toBe(false); // one client, one encoding for both
    expect(verify(latin1("jurgen"), latin1("pässword"))).toBe(false);
    expect(verify(latin1("jürgen"), latin1("password"))).toBe(false);
    expect(verify(latin1("jürgen"), latin1("pässwor"))).toBe(false);
  });

  test("a secret with characters past U+00FF has only its UTF-8 form", () => {
    const verify = verifierOfOctets({ username: "u", password: "密码" });
    expect(verify(latin1("u"), utf8.encode("密码"))).toBe(true);
    expect(verify(latin1("u"), Uint8Array.of(0x3f, 0x3f))).toBe(false); // what Java's SOCKS client sends for it: "??"
    expect(verify(latin1("u"), Uint8Array.of(0x06, 0x01))).toBe(false); // the low bytes of each UTF-16 unit
  });

  test("invalid UTF-8 is compared as octets, not as U+FFFD: a secret holding U+FFFD does not match any bad byte", () => {
    const verify = verifierOfOctets({ username: "u", password: "a\uFFFDb" });
    expect(verify(latin1("u"), Uint8Array.of(0x61, 0xff, 0x62))).toBe(false);
    expect(verify(latin1("u"), Uint8Array.of(0x61, 0x80, 0x62))).toBe(false);
    expect(verify(latin1("u"), utf8.encode("a\uFFFDb"))).toBe(true);
  });
});
