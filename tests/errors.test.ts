/**
 * SPEC §4, written out here by hand (not read from lib/errors.ts): the answer each error kind
 * gets on each protocol, and the OS error codes behind the dial failures. The SOCKS machines'
 * tests check that they answer from ERROR_TABLE; this checks ERROR_TABLE against the SPEC, for
 * the rows loopback cannot produce end to end (network / host unreachable).
 */
import { describe, expect, test } from "bun:test";
import { ERROR_TABLE, type ErrorKind, errnoOf, kindFromErrno, lookupFailure } from "../lib/errors.ts";

// kind: [SOCKS5 REP (null: close without a reply), SOCKS4 CD, HTTP status]
const SPEC_4: Record<ErrorKind, [number | null, number, number]> = {
  protocol: [0x01, 0x5b, 400], // malformed request
  uriTooLong: [0x01, 0x5b, 414],
  headersTooLarge: [0x01, 0x5b, 431],
  headerTimeout: [null, 0x5b, 408],
  handshakeTimeout: [null, 0x5b, 408],
  bodyTimeout: [null, 0x5b, 408],
  clientTimeout: [null, 0x5b, 408],
  authFailed: [0x01, 0x5b, 407], // SOCKS5: status 0x01 of RFC 1929
  denied: [0x02, 0x5b, 403],
  dnsFailed: [0x04, 0x5b, 502], // name does not resolve
  connectRefused: [0x05, 0x5b, 502],
  netUnreachable: [0x03, 0x5b, 502],
  hostUnreachable: [0x04, 0x5b, 502],
  connectTimeout: [0x06, 0x5b, 504],
  connectFailed: [0x01, 0x5b, 502],
  upstreamTimeout: [0x06, 0x5b, 504],
  upstreamProtocol: [0x01, 0x5b, 502],
  commandNotSupported: [0x07, 0x5b, 501],
  methodNotAllowed: [0x07, 0x5b, 405],
  versionNotSupported: [0x01, 0x5b, 505], // RFC 9110 §15.6.6 (SPEC §4 is silent: "malformed" would be 400)
  addressTypeNotSupported: [0x08, 0x5b, 400],
  limitExceeded: [0x01, 0x5b, 503], // over a limit
  internal: [0x01, 0x5b, 500],
};

describe("ERROR_TABLE is SPEC §4", () => {
  test("every kind, every protocol", () => {
    expect(Object.keys(ERROR_TABLE).sort()).toEqual(Object.keys(SPEC_4).sort());
    for (const [kind, [socks5, socks4, http]] of Object.entries(SPEC_4)) {
      const row = ERROR_TABLE[kind as ErrorKind];
      expect([kind, row.socks5, row.socks4, row.http]).toEqual([kind, socks5, socks4, http]);
    }
  });
});

describe("kindFromErrno", () => {
  test("OS and resolver codes to kinds", () => {
    const cases: [string, ErrorKind][] = [
      ["ECONNREFUSED", "connectRefused"],
      ["ENETUNREACH", "netUnreachable"],
      ["ENETDOWN", "netUnreachable"],
      ["EADDRNOTAVAIL", "netUnreachable"],
      ["EHOSTUNREACH", "hostUnreachable"],
      ["EHOSTDOWN", "hostUnreachable"],
      ["ETIMEDOUT", "connectTimeout"],
      ["EAFNOSUPPORT", "netUnreachable"],
      ["ENOTFOUND", "dnsFailed"],
      ["EAI_NONAME", "dnsFailed"],
      ["EAI_AGAIN", "dnsFailed"],
      ["DNS_ESERVFAIL", "dnsFailed"],
      ["EACCES", "denied"],
      ["EPERM", "denied"],
      ["EMFILE", "limitExceeded"],
      ["ENOBUFS", "limitExceeded"],
    ];
    for (const [code, kind] of cases) expect([code, kindFromErrno(code)]).toEqual([code, kind]);
    expect(kindFromErrno("EWHATEVER")).toBe("internal");
  });
});

describe("errnoOf and lookupFailure", () => {
  test("a Deno error's class name is read as its errno (AddrInUse too: the listen adapter asks for it)", () => {
    const deno = (name: string) => Object.assign(new Error("x"), { name });
    expect(errnoOf(deno("AddrInUse"))).toBe("EADDRINUSE");
    expect(errnoOf(deno("NotConnected"))).toBe("ENOTCONN"); // a client reset before its accept (lib/runtime/deno.ts)
    expect(errnoOf(deno("ConnectionRefused"))).toBe("ECONNREFUSED");
    expect(errnoOf(Object.assign(new Error("x"), { code: "EMFILE" }))).toBe("EMFILE");
    expect(errnoOf(new Error("x"))).toBeUndefined();
  });

  test("a failed lookup names the host under both runtimes' errors; the OS error's kind stays (EMFILE: a limit of ours, not the name's)", () => {
    const bun = lookupFailure("svc.invalid", Object.assign(new Error("getaddrinfo ENOTFOUND svc.invalid"), { code: "ENOTFOUND" }));
    expect([bun.kind, bun.message]).toEqual(["dnsFailed", "svc.invalid does not resolve (ENOTFOUND)"]);
    const deno = lookupFailure("svc.invalid", Object.assign(new Error("failed to lookup"), { name: "NotFound" }));
    expect([deno.kind, deno.message]).toEqual(["dnsFailed", "svc.invalid does not resolve (ENOTFOUND)"]);
    expect(lookupFailure("svc.invalid", Object.assign(new Error("x"), { code: "EMFILE" })).kind).toBe("limitExceeded");
    expect(lookupFailure("svc.invalid", new Error("odd")).message).toBe("svc.invalid does not resolve (odd)");
    expect([lookupFailure("svc.invalid").kind, lookupFailure("svc.invalid").message]).toEqual(["dnsFailed", "svc.invalid: no addresses"]);
  });
});
