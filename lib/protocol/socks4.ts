/**
 * SOCKS4 and SOCKS4a server machine: "SOCKS: A protocol for TCP proxy across firewalls" (Ying-Da
 * Lee, SOCKS 4) and "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol". Pure: bytes in, events out;
 * socks.ts does the buffering and version dispatch (SPEC §3, §4).
 *
 * Request: VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL, and for 4a (DSTIP 0.0.0.x, x != 0) a
 * NUL-terminated domain after the USERID. Reply: VN=0 CD DSTPORT(2) DSTIP(4).
 *
 * Deliberately not supported:
 * - BIND (CD 2): CD 0x5B, kind "commandNotSupported" (SPEC §3).
 * - identd checks (CD 0x5C / 0x5D): USERID is passed on in the connect event for the log only.
 * - Authentication: SOCKS4 has none, so with auth configured every request is refused with 0x5B,
 *   kind "authFailed" (SPEC §3). The request is read to its end first, like every other refusal,
 *   so that closing after the reply never meets unread input (which would reset the connection).
 *
 * Checks, in order: USERID / domain length limits (0x5B as soon as they are exceeded, "protocol"),
 * then on the whole request: CD not CONNECT/BIND ("protocol"), bad 4a domain ("protocol"), auth
 * configured ("authFailed"), BIND ("commandNotSupported"). DSTIP 0.0.0.0 is passed on as an IPv4
 * target (it is not 4a); the dialler connects to 127.0.0.1 for it, as the kernel would, and
 * --deny-destinations judges that address (lib/address.ts dialledAddress).
 */
import { ERROR_TABLE, ProxyError, hexOctet, Socks4Reply, type ErrorKind } from "../errors.ts";
import type { SocksCore, SocksEvent, SocksOptions, SocksState, SocksTarget } from "./socks.ts";
import { ipv4Text, parseIPv4, readHostname } from "./socks-address.ts";

export const Socks4 = { Version: 0x04, ReplyVersion: 0x00 } as const;
const Socks4Command = { Connect: 0x01, Bind: 0x02 } as const;

/** VN CD DSTPORT(2) DSTIP(4), before the USERID. */
const FIXED_BYTES = 8;
/** A 4a domain; 255 octets is the DNS limit (RFC 1035 §2.3.4) and the SOCKS5 domain limit. */
const MAX_DOMAIN_BYTES = 255;
/** findNul results. */
const NEED_MORE = -1;
const TOO_LONG = -2;

const UTF8 = new TextDecoder();

export function createSocks4Core(options: SocksOptions): SocksCore {
  return new Socks4Core(options);
}

class Socks4Core implements SocksCore {
  state: Exclude<SocksState, "awaitVersion"> = "awaitRequest";
  readonly #options: SocksOptions;

  constructor(options: SocksOptions) {
    this.#options = options;
  }

  /** The transition function: SOCKS4 has one client message, the request. */
  step(b: Uint8Array, p: number, end: number, out: SocksEvent[]): number {
    return this.state === "awaitRequest" ? this.#request(b, p, end, out) : 0;
  }

  success(bound: { address: string; port: number }): Uint8Array {
    if (this.state !== "connecting") throw new ProxyError("internal", `SOCKS4 success() in state ${this.state}`);
    this.state = "established";
    // The SOCKS4 document says DSTPORT/DSTIP of a CONNECT reply are ignored; we send the bound
    // socket anyway, or zeros when it is not IPv4.
    return encodeReply(Socks4Reply.Granted, parseIPv4(bound.address), bound.port);
  }

  failure(kind: ErrorKind): Uint8Array | null {
    const replyable = this.state === "awaitRequest" || this.state === "connecting";
    this.state = "closed";
    return replyable ? encodeReply(ERROR_TABLE[kind].socks4, null, 0) : null;
  }

  #request(b: Uint8Array, p: number, end: number, out: SocksEvent[]): number {
    if (end - p < FIXED_BYTES) return 0;
    const max = this.#options.maxUserIdBytes;
    const userEnd = findNul(b, p + FIXED_BYTES, end, max);
    if (userEnd === TOO_LONG) return this.#fail(out, "protocol", `USERID longer than ${max} bytes`, 0);
    if (userEnd === NEED_MORE) return 0;
    const port = (b[p + 2]! << 8) | b[p + 3]!;
    let target: SocksTarget | null;
    let last = userEnd;
    if (b[p + 4] === 0 && b[p + 5] === 0 && b[p + 6] === 0 && b[p + 7] !== 0) {
      last = findNul(b, userEnd + 1, end, MAX_DOMAIN_BYTES);
      if (last === TOO_LONG) return this.#fail(out, "protocol", `4a domain longer than ${MAX_DOMAIN_BYTES} bytes`, 0);
      if (last === NEED_MORE) return 0;
      const host = readHostname(b, userEnd + 1, last);
      target = host === null ? null : { atyp: "domain", host, port };
    } else {
      target = { atyp: "ipv4", host: ipv4Text(b, p + 4), port };
    }
    const userId = UTF8.decode(b.subarray(p + FIXED_BYTES, userEnd));
    return this.#decide(b[p + 1]!, target, userId, last + 1 - p, out);
  }

  /** Verdict on a whole request of `size` bytes. */
  #decide(cd: number, target: SocksTarget | null, userId: string, size: number, out: SocksEvent[]): number {
    if (cd !== Socks4Command.Connect && cd !== Socks4Command.Bind) return this.#fail(out, "protocol", `CD ${hexOctet(cd)}`, size);
    if (!target) return this.#fail(out, "protocol", "4a domain is not a valid host name", size);
    if (this.#options.auth) return this.#fail(out, "authFailed", "SOCKS4 has no authentication and auth is required", size);
    if (cd === Socks4Command.Bind) return this.#fail(out, "commandNotSupported", "CD BIND", size);
    this.state = "connecting";
    out.push(userId === "" ? { type: "connect", version: 4, target } : { type: "connect", version: 4, target, userId });
    return size;
  }

  #fail(out: SocksEvent[], kind: ErrorKind, detail: string, consumed: number): number {
    this.state = "closed";
    out.push({ type: "fail", kind, reply: encodeReply(ERROR_TABLE[kind].socks4, null, 0), detail: `SOCKS4: ${detail}` });
    return consumed;
  }
}

/**
 * Index of the NUL ending a field that starts at `from` and holds at most `max` bytes: NEED_MORE
 * while it may still come, TOO_LONG once `max` bytes have arrived without it.
 */
function findNul(b: Uint8Array, from: number, end: number, max: number): number {
  const limit = from + max; // the last index the NUL may occupy
  const nul = b.subarray(from, Math.min(end, limit + 1)).indexOf(0);
  if (nul >= 0) return from + nul;
  return end > limit ? TOO_LONG : NEED_MORE;
}

/** The reply to a request refused before it was read (over the connection cap: SPEC §4). */
export const SOCKS4_OVER_LIMIT_REPLY = encodeReply(ERROR_TABLE.limitExceeded.socks4, null, 0);

/** VN=0 CD DSTPORT DSTIP; a null address is sent as zeros. */
function encodeReply(cd: number, ip: Uint8Array | null, port: number): Uint8Array {
  const out = new Uint8Array(FIXED_BYTES);
  out[0] = Socks4.ReplyVersion;
  out[1] = cd;
  out[2] = (port >>> 8) & 0xff;
  out[3] = port & 0xff;
  if (ip) out.set(ip, 4);
  return out;
}
