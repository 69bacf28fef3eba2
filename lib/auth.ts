/**
 * Proxy credentials check, shared by SOCKS5 (RFC 1929) and HTTP `Proxy-Authorization: Basic`
 * (RFC 7617). Both sides are hashed before a constant-time compare, so neither the content nor
 * the length of the configured secret leaks through timing. Credentials are never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export type Verifier = (username: string, password: string) => boolean;

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export function createVerifier(auth: { readonly username: string; readonly password: string }): Verifier {
  const user = digest(auth.username);
  const pass = digest(auth.password);
  return (username, password) => {
    // Evaluate both compares every time: no early exit on a wrong user name.
    const userOk = timingSafeEqual(digest(username), user);
    const passOk = timingSafeEqual(digest(password), pass);
    return userOk && passOk;
  };
}
