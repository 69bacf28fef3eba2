/**
 * Proxy credentials check, shared by SOCKS5 (RFC 1929) and HTTP `Proxy-Authorization: Basic`
 * (RFC 7617). The compare takes time that depends only on what the client sent: every byte it
 * sent is compared (against the secret repeated), and a length difference counts as a mismatch
 * without an early exit, so neither the content nor the length of the configured secret leaks
 * through timing. Credentials are never logged.
 *
 * Written by hand rather than with node:crypto's timingSafeEqual over SHA-256 digests: importing
 * node:crypto loads Bun's stream modules and cost ~3 ms of a ~15 ms start (bench/RESULTS.md).
 */
export type Verifier = (username: Uint8Array, password: Uint8Array) => boolean;

const encoder = new TextEncoder();
/** What an empty secret is compared as, so the loop still runs over every byte sent. */
const EMPTY_SECRET = new Uint8Array(1);

/** 0 when `given` equals `secret`, non-zero otherwise; the loop runs over `given` only. */
function difference(given: Uint8Array, secret: Uint8Array): number {
  let diff = given.length ^ secret.length;
  const s = secret.length > 0 ? secret : EMPTY_SECRET;
  for (let i = 0; i < given.length; i++) diff |= given[i]! ^ s[i % s.length]!;
  return diff;
}

/**
 * ISO-8859-1 octets of `text`, or null when a character is past U+00FF. Some clients send
 * credentials so whatever the challenge says (Python requests' Basic auth, Java's SOCKS5
 * client): `pässword` arrives as `p\xE4ssword` from them, as `p\xC3\xA4ssword` from curl and Go.
 */
function latin1(text: string): Uint8Array | null {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) return null;
    out[i] = c;
  }
  return out;
}

/**
 * The configured credentials compared with what a client sent, as octets: their UTF-8 encoding
 * (what RFC 7617's `charset="UTF-8"` asks for, and what most clients send), or their ISO-8859-1
 * one where it exists (the same octets for ASCII), both fields in the same one, as a client
 * encodes them. Every compare runs every time: no early exit on a wrong user name or on the
 * first encoding matching.
 */
export function createVerifier(auth: { readonly username: string; readonly password: string }): Verifier {
  const user = encoder.encode(auth.username);
  const pass = encoder.encode(auth.password);
  const user1 = latin1(auth.username) ?? user;
  const pass1 = latin1(auth.password) ?? pass;
  return (username, password) => {
    const utf8 = difference(username, user) | difference(password, pass);
    const iso = difference(username, user1) | difference(password, pass1);
    return utf8 === 0 || iso === 0; // both already computed
  };
}
