/**
 * SOCKS5 server machine: RFC 1928 (SOCKS Protocol Version 5) with RFC 1929 (Username/Password
 * Authentication); the address codec (ATYP, RFC 5952 IPv6 text) is socks-address.ts.
 * Pure: bytes in, events out; socks.ts does the buffering and version dispatch (SPEC §3, §4).
 *
 * Deliberately not supported:
 * - GSSAPI (RFC 1961) and every method other than 0x00 / 0x02: answered with X'FF'.
 * - BIND and UDP ASSOCIATE: REP X'07' until they are built (SPEC §3).
 * - Non-ASCII (IDN) domain names: clients must send A-labels (punycode).
 *
 * Choices where the RFCs leave room:
 * - NMETHODS = 0 (RFC 1928 §3 says 1 to 255) is malformed: answered `05 FF` (an empty list holds
 *   no acceptable method, and X'FF' is the only refusal a greeting can get), kind "protocol".
 * - The method is chosen by policy, not by the client's order: 0x00 without auth, only 0x02 with.
 * - RFC 1929 with a wrong VER is malformed: status `01 01` (SPEC §4: 0x01 where a reply is
 *   possible). Empty UNAME/PASSWD (RFC 1929 says 1-255) are passed to verify(), which decides.
 * - RSV is not checked (RFC 1928 §4 reserves it as X'00'; Postel, as Dante does: microsocks 1.0.3 answers a non-zero RSV with 0x01).
 * - A request is read to its end before any reply other than bad VER / unknown ATYP, so closing
 *   right after the reply never meets unread input (which would reset the connection and could
 *   destroy the reply on its way). An unknown ATYP has no known length: REP X'08' at once.
 * - The request checks run in this order: VER (0x01), ATYP (0x08), DST.ADDR (0x01), CMD (0x07).
 */
import { ERROR_TABLE, ProxyError, hexOctet, Socks5Reply, type ErrorKind } from "../errors.ts";
import type { SocksCore, SocksEvent, SocksOptions, SocksState, SocksTarget } from "./socks.ts";
import { ipv4Text, ipv6Text, parseIPv4, parseIPv6, readHostname } from "./socks-address.ts";

/** RFC 1928 §3, §4 and RFC 1929 §2 field values. */
export const Socks5 = { Version: 0x05 } as const;
export const Socks5Method = {
  NoAuthenticationRequired: 0x00,
  Gssapi: 0x01,
  UsernamePassword: 0x02,
  NoAcceptableMethods: 0xff,
} as const;
const Socks5Command = { Connect: 0x01, Bind: 0x02, UdpAssociate: 0x03 } as const;
const Socks5Atyp = { IPv4: 0x01, DomainName: 0x03, IPv6: 0x04 } as const;
export const Rfc1929 = { Version: 0x01, StatusSuccess: 0x00, StatusFailure: 0x01 } as const;

const UTF8 = new TextDecoder();

// The replies every successful handshake sends, made once: a Conn may queue a view of what it is
// given, and nothing ever writes into these.
export const CHOSE_NO_AUTHENTICATION = Uint8Array.of(Socks5.Version, Socks5Method.NoAuthenticationRequired);
const CHOSE_USERNAME_PASSWORD = Uint8Array.of(Socks5.Version, Socks5Method.UsernamePassword);
const AUTH_SUCCEEDED = Uint8Array.of(Rfc1929.Version, Rfc1929.StatusSuccess);

/** RFC 1928 §3: the greeting's refusal. */
function refusal(): Uint8Array {
  return Uint8Array.of(Socks5.Version, Socks5Method.NoAcceptableMethods);
}

/** RFC 1928 §4: VER CMD RSV ATYP — then DST.ADDR, then DST.PORT (2). */
const REQUEST_HEAD_BYTES = 4;
const PORT_BYTES = 2;
/** RFC 1928 §3: VER NMETHODS, then NMETHODS octets. */
const GREETING_HEAD_BYTES = 2;
/** RFC 1929 §2: VER ULEN, then UNAME, then PLEN (1) and PASSWD. */
const AUTH_HEAD_BYTES = 2;

export function createSocks5Core(options: SocksOptions): SocksCore {
  return new Socks5Core(options);
}

class Socks5Core implements SocksCore {
  state: Exclude<SocksState, "awaitVersion"> = "awaitGreeting";
  #username: string | undefined;
  readonly #options: SocksOptions;

  constructor(options: SocksOptions) {
    this.#options = options;
  }

  /** The transition function: one message from b[p, end) per call; 0 = need more bytes. */
  step(b: Uint8Array, p: number, end: number, out: SocksEvent[]): number {
    switch (this.state) {
      case "awaitGreeting":
        return this.#greeting(b, p, end, out);
      case "awaitAuth":
        return this.#auth(b, p, end, out);
      case "awaitRequest":
        return this.#request(b, p, end, out);
      default:
        return 0;
    }
  }

  success(bound: { address: string; port: number }): Uint8Array {
    if (this.state !== "connecting") throw new ProxyError("internal", `SOCKS5 success() in state ${this.state}`);
    this.state = "established";
    return CONNECTING_REPLIES.success(bound);
  }

  /** A reply only while the client awaits one for its request; a greeting or auth gets a close. */
  failure(kind: ErrorKind): Uint8Array | null {
    const replyable = this.state === "awaitRequest" || this.state === "connecting";
    this.state = "closed";
    return replyable ? CONNECTING_REPLIES.failure(kind) : null;
  }

  /** RFC 1928 §3: VER NMETHODS METHODS. VER was checked by the dispatcher. */
  #greeting(b: Uint8Array, p: number, end: number, out: SocksEvent[]): number {
    if (end - p < GREETING_HEAD_BYTES) return 0;
    const size = GREETING_HEAD_BYTES + b[p + 1]!;
    if (size === GREETING_HEAD_BYTES) return this.#fail(out, "protocol", refusal(), "greeting offers no methods (NMETHODS=0)", size);
    if (end - p < size) return 0;
    const wanted = this.#options.auth ? Socks5Method.UsernamePassword : Socks5Method.NoAuthenticationRequired;
    let offered = false;
    for (let i = p + GREETING_HEAD_BYTES; i < p + size; i++) if (b[i] === wanted) offered = true;
    if (!offered) return this.#fail(out, "authFailed", refusal(), `client does not offer method ${hexOctet(wanted)}`, size);
    out.push({ type: "send", bytes: wanted === Socks5Method.UsernamePassword ? CHOSE_USERNAME_PASSWORD : CHOSE_NO_AUTHENTICATION });
    this.state = wanted === Socks5Method.UsernamePassword ? "awaitAuth" : "awaitRequest";
    return size;
  }

  /** RFC 1929 §2: VER ULEN UNAME PLEN PASSWD. Credentials never go into a detail. */
  #auth(b: Uint8Array, p: number, end: number, out: SocksEvent[]): number {
    const failure = Uint8Array.of(Rfc1929.Version, Rfc1929.StatusFailure);
    if (b[p] !== Rfc1929.Version) return this.#fail(out, "protocol", failure, `RFC 1929 VER ${hexOctet(b[p]!)}`, 0);
    if (end - p < AUTH_HEAD_BYTES) return 0;
    const passAt = p + AUTH_HEAD_BYTES + b[p + 1]! + 1; // after PLEN
    if (end < passAt) return 0;
    const size = passAt + b[passAt - 1]! - p;
    if (end - p < size) return 0;
    // Compared as octets (lib/auth.ts: UTF-8 or ISO-8859-1, RFC 1929 names no character set).
    const username = b.subarray(p + AUTH_HEAD_BYTES, passAt - 1);
    let ok: boolean;
    try {
      ok = this.#options.auth?.verify(username, b.subarray(passAt, p + size)) === true;
    } catch {
      return this.#fail(out, "internal", failure, "credential check threw", size);
    }
    if (!ok) return this.#fail(out, "authFailed", failure, "username/password rejected (RFC 1929)", size);
    this.#username = UTF8.decode(username);
    out.push({ type: "send", bytes: AUTH_SUCCEEDED });
    this.state = "awaitRequest";
    return size;
  }

  /** RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. */
  #request(b: Uint8Array, p: number, end: number, out: SocksEvent[]): number {
    // The greeting settled the version, so the client reads a SOCKS5 reply: 0x01, as microsocks
    // answers (SPEC §4: 0x01 where a reply is possible).
    if (b[p] !== Socks5.Version) return this.#fail(out, "protocol", failureReply("protocol"), `request VER ${hexOctet(b[p]!)}`, 0);
    if (end - p < REQUEST_HEAD_BYTES) return 0;
    const atyp = b[p + 3]!; // ATYP
    if (atyp === Socks5Atyp.DomainName && end - p < REQUEST_HEAD_BYTES + 1) return 0; // its length octet
    const addrBytes = addressBytes(atyp, b[p + REQUEST_HEAD_BYTES]!);
    if (addrBytes < 0) {
      return this.#fail(out, "addressTypeNotSupported", failureReply("addressTypeNotSupported"), `ATYP ${hexOctet(atyp)}`, REQUEST_HEAD_BYTES);
    }
    const size = REQUEST_HEAD_BYTES + addrBytes + PORT_BYTES;
    if (end - p < size) return 0;
    const target = readTarget(b, p + REQUEST_HEAD_BYTES, atyp, p + size - PORT_BYTES);
    if (!target) return this.#fail(out, "protocol", failureReply("protocol"), "DST.ADDR is not a valid host name", size);
    const cmd = b[p + 1]!; // CMD
    if (cmd !== Socks5Command.Connect) {
      return this.#fail(out, "commandNotSupported", failureReply("commandNotSupported"), `CMD ${commandName(cmd)}`, size);
    }
    this.state = "connecting";
    const username = this.#username;
    out.push(username === undefined ? { type: "connect", version: 5, target } : { type: "connect", version: 5, target, username });
    return size;
  }

  #fail(out: SocksEvent[], kind: ErrorKind, reply: Uint8Array | null, detail: string, consumed: number): number {
    this.state = "closed";
    out.push({ type: "fail", kind, reply, detail: `SOCKS5: ${detail}` });
    return consumed;
  }
}

// ---- one-pass reading of the common handshake (listeners/socks.ts) ----
//
// A no-auth client's greeting and its CONNECT request usually arrive whole, one per segment. The
// session reads those two here without building a machine (paired SOCKS5 rr: the machine's
// objects, events and steps cost ~2 us per connection when cold, bench/RESULTS.md) and hands
// anything else to the machine. What these accept, the machine does the same with:
// tests/socks-fuzz.test.ts feeds both the same generated and mutated handshakes.

/** A whole SOCKS5 greeting offering "no authentication" (0x00) and nothing after it: the machine without auth answers CHOSE_NO_AUTHENTICATION. */
export function isNoAuthGreeting(b: Uint8Array): boolean {
  const n = b.length;
  if (n <= GREETING_HEAD_BYTES || b[0] !== Socks5.Version || b[1]! + GREETING_HEAD_BYTES !== n) return false;
  for (let i = GREETING_HEAD_BYTES; i < n; i++) if (b[i] === Socks5Method.NoAuthenticationRequired) return true;
  return false;
}

/** A CONNECT request read in one pass; tunnel bytes may follow it from `size` on. */
export interface ConnectRequest {
  readonly target: SocksTarget;
  readonly size: number;
}

/**
 * A whole CONNECT request to an IPv4 address or a host name at the start of `b`, read with the
 * machine's own address helpers, or null: another command, a partial or malformed request, and
 * an IPv6 target (clients send names and IPv4; the machine's path keeps the IPv6 one) are the
 * machine's business.
 */
export function readConnectRequest(b: Uint8Array): ConnectRequest | null {
  if (b.length <= REQUEST_HEAD_BYTES || b[0] !== Socks5.Version || b[1] !== Socks5Command.Connect) return null;
  const atyp = b[3];
  if (atyp !== Socks5Atyp.IPv4 && atyp !== Socks5Atyp.DomainName) return null;
  const size = REQUEST_HEAD_BYTES + addressBytes(atyp, b[REQUEST_HEAD_BYTES]!) + PORT_BYTES;
  if (b.length < size) return null;
  const target = readTarget(b, REQUEST_HEAD_BYTES, atyp, size - PORT_BYTES);
  return target === null ? null : { target, size };
}

/** The answers to a request being dialled (the machine's "connecting" state; also for one read by readConnectRequest). */
export const CONNECTING_REPLIES = {
  success(bound: { address: string; port: number }): Uint8Array {
    return encodeReply(Socks5Reply.Succeeded, bound.address, bound.port);
  },
  failure(kind: ErrorKind): Uint8Array | null {
    return failureReply(kind);
  },
};

/** DST.ADDR length for an ATYP (a domain's includes its length octet); -1 = unknown ATYP. */
function addressBytes(atyp: number, domainLength: number): number {
  if (atyp === Socks5Atyp.IPv4) return 4;
  if (atyp === Socks5Atyp.IPv6) return 16;
  if (atyp === Socks5Atyp.DomainName) return 1 + domainLength;
  return -1;
}

function readTarget(b: Uint8Array, at: number, atyp: number, portAt: number): SocksTarget | null {
  const port = (b[portAt]! << 8) | b[portAt + 1]!;
  if (atyp === Socks5Atyp.IPv4) return { atyp: "ipv4", host: ipv4Text(b, at), port };
  if (atyp === Socks5Atyp.IPv6) return { atyp: "ipv6", host: ipv6Text(b, at), port };
  const host = readHostname(b, at + 1, portAt);
  return host === null ? null : { atyp: "domain", host, port };
}

function commandName(cmd: number): string {
  if (cmd === Socks5Command.Bind) return "BIND";
  if (cmd === Socks5Command.UdpAssociate) return "UDP ASSOCIATE";
  return hexOctet(cmd);
}

/** RFC 1928 §6 reply with ATYP X'01' 0.0.0.0:0, or null where SPEC §4 says close. */
function failureReply(kind: ErrorKind): Uint8Array | null {
  const rep = ERROR_TABLE[kind].socks5;
  return rep === null ? null : encodeReply(rep, "", 0);
}

/** RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT; an address we cannot parse is sent as 0.0.0.0. */
function encodeReply(rep: number, address: string, port: number): Uint8Array {
  const v6 = address.includes(":") ? parseIPv6(address) : null;
  const addr = v6 ?? parseIPv4(address) ?? new Uint8Array(4);
  const out = new Uint8Array(REQUEST_HEAD_BYTES + addr.length + PORT_BYTES);
  out[0] = Socks5.Version;
  out[1] = rep;
  out[3] = v6 ? Socks5Atyp.IPv6 : Socks5Atyp.IPv4;
  out.set(addr, REQUEST_HEAD_BYTES);
  out[out.length - 2] = (port >>> 8) & 0xff;
  out[out.length - 1] = port & 0xff;
  return out;
}
