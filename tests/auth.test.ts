/**
 * lib/auth.ts: the credentials compare answers exactly "both equal", on vectors that probe
 * lengths (prefixes, extensions, repeats of the secret, empty) and on a bounded, seeded random
 * sample checked against plain string equality.
 */
import { describe, expect, test } from "bun:test";
import { prng } from "./helpers/fuzz.ts";
import { createVerifier } from "../lib/auth.ts";


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
});
