/**
 * SOCKS on one port (SPEC §3): the first byte chooses SOCKS4/4a (VN 0x04, socks4.ts) or SOCKS5
 * (VER 0x05, RFC 1928 + RFC 1929, socks5.ts). This file owns the framing for both: it buffers
 * partial messages, hands whole ones to the version core one at a time, and keeps the bytes that
 * follow the request (early client data) for takeRest(). Pure: no I/O, no timers, no runtime.
 *
 * Deliberately not supported: any other first byte — HTTP on the SOCKS port, TLS, SOCKS6 — is a
 * "protocol" failure closed without a reply (we cannot speak a protocol we did not recognise).
 *
 * Contract for the session driver:
 * - feed() never throws; every malformed input ends in exactly one "fail" event. After "connect"
 *   or "fail" it returns [] and keeps the bytes for takeRest().
 * - Chunks are kept by reference, not copied (Conn.onData chunks belong to the receiver, see
 *   lib/runtime/types.ts); a whole message in one chunk is parsed in place.
 * - success()/failure() are answers to "connect". success() in any other state is a driver bug
 *   and throws a ProxyError("internal") naming the state. failure() may be called in any state: it
 *   returns a reply only while the client is waiting for one to its request, else null (close).
 */
import { ProxyError, SOCKS4_REPLY_TEXT, SOCKS5_REPLY_TEXT, hexOctet, type ErrorKind } from "../errors.ts";
import { Socks4, createSocks4Core } from "./socks4.ts";
import { Rfc1929, Socks5, Socks5Method, createSocks5Core } from "./socks5.ts";

export interface SocksTarget {
  readonly atyp: "ipv4" | "ipv6" | "domain";
  /** IPv6 in RFC 5952 text without brackets; a domain exactly as sent (it may be an IP literal). */
  readonly host: string;
  readonly port: number;
}

export type SocksEvent =
  /** Write to the client now (SOCKS5 method selection, RFC 1929 status). */
  | { type: "send"; bytes: Uint8Array }
  /** Request complete: the driver dials, then calls success() or failure(). */
  | { type: "connect"; version: 4 | 5; target: SocksTarget; userId?: string; username?: string }
  /** Write `reply` if non-null, then close. `detail` is for the log and never holds credentials. */
  | { type: "fail"; kind: ErrorKind; reply: Uint8Array | null; detail: string };

export interface SocksOptions {
  /** null = no authentication (SOCKS5 method 0x00); else RFC 1929 only, and SOCKS4 is refused. */
  readonly auth: { verify(username: Uint8Array, password: Uint8Array): boolean } | null;
  /** SOCKS4 USERID limit in bytes, without its NUL (255). */
  readonly maxUserIdBytes: number;
}

export type SocksState =
  | "awaitVersion"
  | "awaitGreeting"
  | "awaitAuth"
  | "awaitRequest"
  | "connecting"
  | "established"
  | "closed";

export interface SocksMachine {
  readonly state: SocksState;
  feed(chunk: Uint8Array): SocksEvent[];
  /** Bytes received after the request; forward them upstream. Empties the store. */
  takeRest(): Uint8Array;
  success(bound: { address: string; port: number }): Uint8Array;
  failure(kind: ErrorKind): Uint8Array | null;
}

/** A version core: parses one message from b[start, end) per step; the framing is done here. */
export interface SocksCore {
  readonly state: Exclude<SocksState, "awaitVersion">;
  /** Bytes consumed (0 = need more, or failed: see state). Appends its events to `out`. */
  step(b: Uint8Array, start: number, end: number, out: SocksEvent[]): number;
  success(bound: { address: string; port: number }): Uint8Array;
  failure(kind: ErrorKind): Uint8Array | null;
}

const ASCII_A = 0x41;
const ASCII_Z = 0x5a;

/**
 * A reply as logs print it, with its field, code and the RFC's text: `REP 0x05 (Connection
 * refused)`, `CD 0x5b (request rejected or failed)`; the two-octet ones are a SOCKS5 method
 * selection (`METHOD 0xff`) or an RFC 1929 status.
 */
export function describeReply(reply: Uint8Array): string {
  const code = reply[1] ?? 0;
  if (reply.length === 2) {
    if (reply[0] === Socks5.Version) return `METHOD ${hexOctet(code)} (${code === Socks5Method.NoAcceptableMethods ? "no acceptable methods" : "chosen"})`;
    return `RFC 1929 STATUS ${hexOctet(code)} (${code === Rfc1929.StatusSuccess ? "success" : "failure"})`;
  }
  if (reply[0] === Socks5.Version) return `REP ${hexOctet(code)} (${SOCKS5_REPLY_TEXT[code] ?? "unassigned"})`;
  return `CD ${hexOctet(code)} (${SOCKS4_REPLY_TEXT[code] ?? "unassigned"})`;
}

/** The first byte on the port: SOCKS4 VN / SOCKS5 VER. */
export const SocksVersion = { Socks4: Socks4.Version, Socks5: Socks5.Version } as const;

export function createSocksMachine(options: SocksOptions): SocksMachine {
  return new Machine(options);
}

const EMPTY = new Uint8Array(0);

class Machine implements SocksMachine {
  readonly #options: SocksOptions;
  #core: SocksCore | null = null;
  /** Failed on the first byte, before any core existed. */
  #rejected = false;
  /** An incomplete message (only while handshaking). */
  #partial: Uint8Array | null = null;
  /** Bytes after the request, in arrival order. */
  #rest: Uint8Array[] = [];

  constructor(options: SocksOptions) {
    this.#options = options;
  }

  get state(): SocksState {
    if (this.#core) return this.#core.state;
    return this.#rejected ? "closed" : "awaitVersion";
  }

  feed(chunk: Uint8Array): SocksEvent[] {
    const out: SocksEvent[] = [];
    if (chunk.length === 0) return out;
    if (this.#settled()) {
      this.#rest.push(chunk);
      return out;
    }
    const b = this.#partial ? concat([this.#partial, chunk]) : chunk;
    this.#partial = null;
    let p = 0;
    while (p < b.length) {
      const core = this.#core ?? this.#choose(b[p]!, out);
      if (!core) break;
      const n = core.step(b, p, b.length, out);
      p += n;
      if (n === 0 || this.#settled()) break;
    }
    if (p < b.length) {
      const tail = p === 0 ? b : b.subarray(p);
      if (this.#settled()) this.#rest.push(tail);
      else this.#partial = tail;
    }
    return out;
  }

  takeRest(): Uint8Array {
    const rest = this.#rest.length === 1 ? this.#rest[0]! : this.#rest.length === 0 ? EMPTY : concat(this.#rest);
    this.#rest = [];
    return rest;
  }

  success(bound: { address: string; port: number }): Uint8Array {
    if (!this.#core) throw new ProxyError("internal", `SOCKS success() in state ${this.state}`);
    return this.#core.success(bound);
  }

  failure(kind: ErrorKind): Uint8Array | null {
    if (this.#core) return this.#core.failure(kind);
    this.#rejected = true; // no version yet: nothing the client could parse
    return null;
  }

  /** The request is answered or being answered: nothing more to parse. */
  #settled(): boolean {
    const s = this.state;
    return s === "connecting" || s === "established" || s === "closed";
  }

  #choose(version: number, out: SocksEvent[]): SocksCore | null {
    if (version === SocksVersion.Socks5) return (this.#core = createSocks5Core(this.#options));
    if (version === SocksVersion.Socks4) return (this.#core = createSocks4Core(this.#options));
    this.#rejected = true;
    // An upper-case ASCII letter: the start of an HTTP method (GET, CONNECT) sent to a SOCKS port.
    const hint = version >= ASCII_A && version <= ASCII_Z ? ` ('${String.fromCharCode(version)}', HTTP?)` : "";
    out.push({
      type: "fail",
      kind: "protocol",
      reply: null,
      detail: `not SOCKS: first byte ${hexOctet(version)}${hint}`,
    });
    return null;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
