/**
 * One error taxonomy for every listener (SPEC §4).
 *
 * A `ProxyError` carries a `kind`; `ERROR_TABLE` maps each kind to the SOCKS5 REP (RFC 1928 §6),
 * the SOCKS4 CD (SOCKS4 protocol document, "reply codes") and the HTTP status (RFC 9110 §15)
 * the client is answered with. `kindFromErrno` is the one place that maps an OS error code to a
 * kind. Anything thrown that is not a `ProxyError` is a bug and is reported as `internal`.
 */

export type ErrorKind =
  | "protocol" // malformed request
  | "uriTooLong" // request line over the limit (414)
  | "headersTooLarge" // header section over the limit (431)
  | "headerTimeout" // request head not complete within the deadline (408)
  | "handshakeTimeout" // SOCKS handshake not complete within --handshake-timeout (closed)
  | "bodyTimeout" // request body stalled for --response-timeout before the response began (408)
  | "clientTimeout" // the client read none of a response for --response-timeout (cut: the answer had begun)
  | "authFailed"
  | "denied" // refused by policy (allow/deny lists, never an open relay)
  | "dnsFailed"
  | "connectRefused"
  | "netUnreachable"
  | "hostUnreachable"
  | "connectTimeout"
  | "connectFailed" // a connect the runtime reported failed without an OS error code
  | "upstreamTimeout" // upstream accepted but did not answer in time (504)
  | "upstreamProtocol" // upstream sent something we cannot relay (502)
  | "commandNotSupported"
  | "methodNotAllowed" // HTTP method not allowed on this listener (405)
  | "versionNotSupported" // an HTTP major version other than 1 (505, RFC 9110 §15.6.6)
  | "addressTypeNotSupported"
  | "limitExceeded" // connection cap, buffer cap, abandoned connects
  | "internal";

/** SOCKS5 reply field values, RFC 1928 §6. */
export const Socks5Reply = {
  Succeeded: 0x00,
  GeneralFailure: 0x01,
  NotAllowedByRuleset: 0x02,
  NetworkUnreachable: 0x03,
  HostUnreachable: 0x04,
  ConnectionRefused: 0x05,
  TtlExpired: 0x06,
  CommandNotSupported: 0x07,
  AddressTypeNotSupported: 0x08,
} as const;

/** SOCKS4 CD values in replies ("SOCKS: A protocol for TCP proxy across firewalls"). */
export const Socks4Reply = {
  Granted: 0x5a,
  RejectedOrFailed: 0x5b,
  NoIdentd: 0x5c,
  IdentMismatch: 0x5d,
} as const;

/** Each REP's text in RFC 1928 §6, as logs print a reply (lib/protocol/socks.ts describeReply). */
export const SOCKS5_REPLY_TEXT: Readonly<Record<number, string>> = {
  [Socks5Reply.Succeeded]: "succeeded",
  [Socks5Reply.GeneralFailure]: "general SOCKS server failure",
  [Socks5Reply.NotAllowedByRuleset]: "connection not allowed by ruleset",
  [Socks5Reply.NetworkUnreachable]: "Network unreachable",
  [Socks5Reply.HostUnreachable]: "Host unreachable",
  [Socks5Reply.ConnectionRefused]: "Connection refused",
  [Socks5Reply.TtlExpired]: "TTL expired",
  [Socks5Reply.CommandNotSupported]: "Command not supported",
  [Socks5Reply.AddressTypeNotSupported]: "Address type not supported",
};

/** Each CD's text in the SOCKS4 protocol document. */
export const SOCKS4_REPLY_TEXT: Readonly<Record<number, string>> = {
  [Socks4Reply.Granted]: "request granted",
  [Socks4Reply.RejectedOrFailed]: "request rejected or failed",
  [Socks4Reply.NoIdentd]: "request rejected because SOCKS server cannot connect to identd on the client",
  [Socks4Reply.IdentMismatch]: "request rejected because the client program and identd report different user-ids",
};

export interface ErrorAnswer {
  /** SOCKS5 REP, or null where SPEC §4 says "close" with no reply. */
  readonly socks5: number | null;
  readonly socks4: number;
  readonly http: number;
  /** Short plain-text reason, used as HTTP body and in logs. */
  readonly reason: string;
}

const R5 = Socks5Reply;
const CD_FAIL = Socks4Reply.RejectedOrFailed;

/** SPEC §4, one row per kind. */
export const ERROR_TABLE: Readonly<Record<ErrorKind, ErrorAnswer>> = Object.freeze({
  protocol: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 400, reason: "malformed request" },
  uriTooLong: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 414, reason: "request line too long" },
  headersTooLarge: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 431, reason: "request header section too large" },
  headerTimeout: { socks5: null, socks4: CD_FAIL, http: 408, reason: "request head not received in time" },
  handshakeTimeout: { socks5: null, socks4: CD_FAIL, http: 408, reason: "handshake not completed in time" },
  bodyTimeout: { socks5: null, socks4: CD_FAIL, http: 408, reason: "request body not received in time" },
  clientTimeout: { socks5: null, socks4: CD_FAIL, http: 408, reason: "response not read in time" },
  authFailed: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 407, reason: "proxy authentication required" },
  denied: { socks5: R5.NotAllowedByRuleset, socks4: CD_FAIL, http: 403, reason: "destination denied by policy" },
  dnsFailed: { socks5: R5.HostUnreachable, socks4: CD_FAIL, http: 502, reason: "destination name does not resolve" },
  connectRefused: { socks5: R5.ConnectionRefused, socks4: CD_FAIL, http: 502, reason: "connection refused by destination" },
  netUnreachable: { socks5: R5.NetworkUnreachable, socks4: CD_FAIL, http: 502, reason: "network unreachable" },
  hostUnreachable: { socks5: R5.HostUnreachable, socks4: CD_FAIL, http: 502, reason: "host unreachable" },
  connectTimeout: { socks5: R5.TtlExpired, socks4: CD_FAIL, http: 504, reason: "connect to destination timed out" },
  connectFailed: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 502, reason: "connect to destination failed" },
  upstreamTimeout: { socks5: R5.TtlExpired, socks4: CD_FAIL, http: 504, reason: "destination did not answer in time" },
  upstreamProtocol: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 502, reason: "invalid response from destination" },
  commandNotSupported: { socks5: R5.CommandNotSupported, socks4: CD_FAIL, http: 501, reason: "command not supported" },
  methodNotAllowed: { socks5: R5.CommandNotSupported, socks4: CD_FAIL, http: 405, reason: "method not allowed" },
  versionNotSupported: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 505, reason: "HTTP version not supported" },
  addressTypeNotSupported: { socks5: R5.AddressTypeNotSupported, socks4: CD_FAIL, http: 400, reason: "address type not supported" },
  limitExceeded: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 503, reason: "over a proxy limit" },
  internal: { socks5: R5.GeneralFailure, socks4: CD_FAIL, http: 500, reason: "internal proxy error" },
});

export class ProxyError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, detail?: string, options?: { cause?: unknown }) {
    super(detail ?? ERROR_TABLE[kind].reason, options);
    this.kind = kind;
    this.name = "ProxyError";
  }
}

/** Wrap anything thrown into a ProxyError; a foreign error becomes `internal` (a bug). */
export function asProxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = errnoOf(err);
  if (code) {
    const kind = kindFromErrno(code);
    if (kind !== "internal") return new ProxyError(kind, code, { cause: err });
  }
  return new ProxyError("internal", err instanceof Error ? err.message : String(err), { cause: err });
}

/**
 * A lookup of `hostname` that failed (`err`) or found no address, as both runtimes' resolvers
 * report it: the OS error's kind where it has one (EMFILE: limitExceeded), else dnsFailed.
 */
export function lookupFailure(hostname: string, err?: unknown): ProxyError {
  if (err === undefined) return new ProxyError("dnsFailed", `${hostname}: no addresses`);
  const e = asProxyError(err);
  return new ProxyError(e.kind === "internal" ? "dnsFailed" : e.kind, `${hostname} does not resolve (${e.message})`, { cause: err });
}

/** An octet as error details print it: `0x05`. */
export function hexOctet(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}

/** The OS error code an error carries (`code`, or a Deno error class name), or undefined. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { code?: unknown; name?: unknown };
  if (typeof e.code === "string") return e.code;
  // Deno errors carry their class name (Deno.errors.ConnectionRefused) rather than an errno.
  if (typeof e.name === "string" && e.name in DENO_ERROR_NAMES) return DENO_ERROR_NAMES[e.name];
  return undefined;
}

const DENO_ERROR_NAMES: Record<string, string> = {
  ConnectionRefused: "ECONNREFUSED",
  ConnectionReset: "ECONNRESET",
  TimedOut: "ETIMEDOUT",
  NotFound: "ENOTFOUND",
  AddrInUse: "EADDRINUSE",
  NotConnected: "ENOTCONN",
  ConnectionAborted: "ECONNABORTED",
};

/** The one mapping from OS / resolver error codes to kinds. */
export function kindFromErrno(code: string): ErrorKind {
  switch (code) {
    case "ECONNREFUSED":
      return "connectRefused";
    case "ENETUNREACH":
    case "ENETDOWN":
    case "EAFNOSUPPORT":
    case "EADDRNOTAVAIL":
      return "netUnreachable";
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
      return "hostUnreachable";
    case "ETIMEDOUT":
      return "connectTimeout";
    case "ENOTFOUND":
    case "EAI_NONAME":
    case "EAI_NODATA":
    case "EAI_AGAIN":
    case "EAI_FAIL":
    case "DNS_ENOTFOUND":
    case "DNS_ESERVFAIL":
    case "DNS_ENODATA":
      return "dnsFailed";
    case "EACCES":
    case "EPERM":
      return "denied";
    case "EMFILE":
    case "ENFILE":
    case "ENOBUFS":
    case "ENOMEM":
      return "limitExceeded";
    default:
      return "internal";
  }
}
