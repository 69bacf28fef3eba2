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
export type Verifier = (username: string, password: string) => boolean;

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

export function createVerifier(auth: { readonly username: string; readonly password: string }): Verifier {
  const user = encoder.encode(auth.username);
  const pass = encoder.encode(auth.password);
  // Both compares run every time: no early exit on a wrong user name.
  return (username, password) => (difference(encoder.encode(username), user) | difference(encoder.encode(password), pass)) === 0;
}
