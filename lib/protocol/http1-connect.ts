/**
 * A CONNECT head (RFC 9110 §9.3.6, authority-form per RFC 9112 §3.2.3) read in one pass over
 * its bytes, for the forward listener's first segment
 * (listeners/http-front.ts): the tunnel needs the authority and where the head ends, nothing
 * else. It accepts only heads the general parser (http1.ts) accepts, with the same authority
 * and end, and returns null for anything else, which then takes the general path and gets its
 * answer there (an error included). Accepted, all CRLF-terminated:
 * - `CONNECT host:port HTTP/1.1` (or 1.0), host of letters, digits, `.` and `-` (a subset of
 *   reg-name that covers names and IPv4), port 1-65535 in at most 5 digits (IPv6 literals and
 *   anything else are declined);
 * - field lines `token ":" OWS value OWS` with values of printable ASCII and HTAB only;
 * - one Host line equal to the target byte for byte (none on 1.0);
 * - no Content-Length, Transfer-Encoding, Expect or Upgrade line (they decide framing or can be
 *   errors: the general path judges them). A Connection line is taken: whatever it says, a
 *   CONNECT that succeeds becomes a tunnel and one that fails is answered with `Connection:
 *   close`, so only the authority and the head's end matter (undici sends `connection: close`);
 * - within the start-line, header-section and field-count limits.
 *
 * Why its own pass rather than a HeadShortcut behind the general scanner: paired CONNECT rr
 * (bench/RESULTS.md), against the general parse, a shortcut that reused the general scans and
 * authority parser took 1.8 us per connection off, this pass 3.3-5.8 us (7 of 7 rounds). In a
 * loop the general parse costs 0.5-0.6 us, that shortcut 0.45, this pass 0.09; per connection,
 * between ~50 us of kernel work, the code they run is cold, and the smaller it is the less it
 * costs. tests/http-plain.test.ts holds it to the general parser
 * on generated and mutated heads and under tight limits.
 *
 * Deliberately not handled here (declined to the general path, never answered here): IPv6
 * literals, percent-encoded or non-ASCII names, obs-fold, any framing field.
 */
import { MAX_PORT } from "../address.ts";
import type { HeadLimits } from "./http1.ts";
import { bytesAre, CR, DIGIT_0, DIGIT_1, DIGIT_9, HTAB, LF, latin1, SP, TCHAR, charClass } from "./http1-scan.ts";
import type { Authority } from "./http1-target.ts";

/** What the tunnel needs from the head. */
export interface ConnectRequest {
  readonly authority: Authority;
  /** Where the head ends (tunnel bytes may follow in the same segment). */
  readonly consumed: number;
}

/** "CONNECT ". */
const CONNECT_SP = [0x43, 0x4f, 0x4e, 0x4e, 0x45, 0x43, 0x54, 0x20];

/** `buf` starts with "CONNECT " and holds more: the only first segment worth trying here. */
export function startsWithConnect(buf: Uint8Array): boolean {
  if (buf.byteLength <= CONNECT_SP.length) return false;
  for (let i = 0; i < CONNECT_SP.length; i++) if (buf[i] !== CONNECT_SP[i]) return false;
  return true;
}
/** " HTTP/1." before the minor digit. */
const SP_HTTP_1 = [0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e];
const TARGET_START = CONNECT_SP.length;
const COLON = 0x3a;
const MAX_PORT_DIGITS = 5;
/** Letters, digits, "." and "-". */
const HOST_CHAR = charClass((c) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x2e || c === 0x2d);
/** Printable ASCII and HTAB: field-vchar without obs-text. */
const VALUE_CHAR = charClass((c) => c === HTAB || (c >= SP && c < 0x7f));

const ASCII = new TextEncoder();
const HOST = ASCII.encode("host");
/** Field names that decide framing or can be errors, by length: declined. */
const JUDGED_ELSEWHERE: Uint8Array[] = [];
for (const name of ["expect", "upgrade", "content-length", "transfer-encoding"]) JUDGED_ELSEWHERE[name.length] = ASCII.encode(name);

function judgedElsewhere(buf: Uint8Array, s: number, length: number): boolean {
  const name = JUDGED_ELSEWHERE[length];
  return name !== undefined && bytesAre(buf, s, name);
}

/** The CONNECT head at the start of `buf`, or null: see above. */
export function readConnectHead(buf: Uint8Array, limits: HeadLimits): ConnectRequest | null {
  const n = buf.length;
  if (!startsWithConnect(buf)) return null;
  let i = TARGET_START;
  while (i < n && HOST_CHAR[buf[i]!] === 1) i++;
  const hostEnd = i;
  if (hostEnd === TARGET_START || buf[i] !== COLON) return null;
  const portStart = ++i;
  let port = 0;
  while (i < n && buf[i]! >= DIGIT_0 && buf[i]! <= DIGIT_9) port = port * 10 + (buf[i++]! - DIGIT_0);
  if (i === portStart || i - portStart > MAX_PORT_DIGITS || port < 1 || port > MAX_PORT) return null;
  const targetEnd = i;
  for (let k = 0; k < SP_HTTP_1.length; k++) if (buf[i + k] !== SP_HTTP_1[k]) return null;
  i += SP_HTTP_1.length;
  const minor = buf[i];
  if ((minor !== DIGIT_0 && minor !== DIGIT_1) || buf[i + 1] !== CR || buf[i + 2] !== LF) return null;
  if (i + 1 > limits.maxRequestLineBytes) return null; // the start-line's length, CRLF excluded
  i += 3;
  const fieldsStart = i;
  let fields = 0;
  let hosts = 0;
  for (;;) {
    if (buf[i] === CR) {
      if (buf[i + 1] !== LF) return null;
      i += 2;
      break;
    }
    const nameStart = i;
    while (i < n && TCHAR[buf[i]!] === 1) i++;
    const nameLength = i - nameStart;
    if (nameLength === 0 || buf[i] !== COLON) return null;
    i++;
    while (buf[i] === SP || buf[i] === HTAB) i++;
    const valueStart = i;
    while (i < n && VALUE_CHAR[buf[i]!] === 1) i++;
    if (buf[i] !== CR || buf[i + 1] !== LF) return null;
    let valueEnd = i;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)) valueEnd--;
    i += 2;
    if (++fields > limits.maxHeaderCount) return null;
    if (nameLength === HOST.length && bytesAre(buf, nameStart, HOST)) {
      if (++hosts > 1 || valueEnd - valueStart !== targetEnd - TARGET_START) return null;
      for (let k = 0; k < valueEnd - valueStart; k++) if (buf[valueStart + k] !== buf[TARGET_START + k]) return null;
    } else if (judgedElsewhere(buf, nameStart, nameLength)) return null;
  }
  if (i - fieldsStart > limits.maxHeaderBytes || (hosts === 0 && minor === DIGIT_1)) return null;
  return { authority: { host: latin1(buf, TARGET_START, hostEnd), port }, consumed: i };
}
