/**
 * lib/dial.ts with a fake runtime that records what it is asked: names that end in a number
 * (address.ts endsInNumber: IPv4 addresses in octal, hex or short forms) are refused before any
 * lookup or connect; names are resolved and IP literals connected as before. No real DNS or
 * socket: a lookup of such a name, on a machine whose resolver answers every name, would dial
 * whatever came back.
 */
import { describe, expect, test } from "bun:test";
import { endsInNumber } from "../lib/address.ts";
import { dial } from "../lib/dial.ts";
import { ProxyError } from "../lib/errors.ts";
import type { Conn, Runtime } from "../lib/runtime/types.ts";

/** A runtime whose resolver answers `answer` for every name (or fails: null), and whose connects are all refused. */
function recordingRuntime(answer: string[] | null = ["127.0.0.1"]) {
  const asked: string[] = [];
  const runtime = {
    resolve(hostname: string): Promise<string[]> {
      asked.push(`resolve ${hostname}`);
      return answer === null ? Promise.reject(new ProxyError("dnsFailed", `${hostname} does not resolve`)) : Promise.resolve(answer);
    },
    connect(options: { hostname: string; port: number }, done: (result: Conn | ProxyError) => void): void {
      asked.push(`connect ${options.hostname}:${options.port}`);
      queueMicrotask(() => done(new ProxyError("connectRefused", "refused by the fake runtime")));
    },
  } as unknown as Runtime;
  return { runtime, asked };
}

function dialed(host: string, answer?: string[] | null): Promise<{ result: Conn | ProxyError; asked: string[] }> {
  const { runtime, asked } = recordingRuntime(answer);
  return new Promise((resolve) => dial(runtime, { host, port: 9 }, { timeoutMs: 5_000 }, (result) => resolve({ result, asked })));
}

const NUMBER_ENDINGS = ["0177.0.0.1", "0x7f.0.0.1", "0x7F.1", "2130706433", "1.2.3", "010.0.0.1", "127.0.0.1.", "127.000.000.001", "host.123", "host.0x", "0x"];
const NAMES = ["localhost", "workload.default.svc", "123.example", "0x7f.example", "a1", "x.y-1", "example.com."];

describe("endsInNumber", () => {
  test("numeric or 0x-hex last labels", () => {
    for (const h of NUMBER_ENDINGS) expect([h, endsInNumber(h)]).toEqual([h, true]);
  });
  test("host names", () => {
    for (const h of NAMES) expect([h, endsInNumber(h)]).toEqual([h, false]);
  });
});

describe("dial", () => {
  test("a name ending in a number is refused as malformed, with no lookup and no connect", async () => {
    for (const host of NUMBER_ENDINGS) {
      const { result, asked } = await dialed(host);
      expect([host, asked]).toEqual([host, []]);
      expect(result).toBeInstanceOf(ProxyError);
      expect((result as ProxyError).kind).toBe("protocol");
      expect((result as ProxyError).message).toContain("non-standard form");
    }
  });

  test("port 0 (SOCKS can send it) is malformed, refused with no lookup and no connect, on every runtime alike", async () => {
    const { runtime, asked } = recordingRuntime();
    for (const host of ["127.0.0.1", "localhost"]) {
      const result = await new Promise((resolve) => dial(runtime, { host, port: 0 }, { timeoutMs: 5_000 }, resolve));
      expect((result as ProxyError).kind).toBe("protocol");
    }
    expect(asked).toEqual([]);
  });

  test("a name under .invalid (RFC 6761 §6.4) fails as dnsFailed with no lookup and no connect", async () => {
    for (const host of ["nonexistent.invalid", "a.b.INVALID", "x.invalid.", "invalid"]) {
      const { result, asked } = await dialed(host);
      expect([host, asked]).toEqual([host, []]);
      expect([host, (result as ProxyError).kind]).toEqual([host, "dnsFailed"]);
    }
    for (const host of ["invalid.example", "notinvalid", "x.invalidate"]) {
      const { asked } = await dialed(host);
      expect(asked[0]).toBe(`resolve ${host}`);
    }
  });

  test("a string that is no host name (empty labels, a colon outside an IPv6 literal, a 64-octet label, 254 octets) is malformed: no lookup, no connect", async () => {
    const long = `${"a".repeat(63)}.`.repeat(4).slice(0, 254);
    for (const host of ["a..b", ".localhost", ".", "..", "localhost..", "a:b", "localhost:80", "127.0.0.1:80", ":", "::::", "a b", "a!b", `${"x".repeat(64)}.test`, long, "é.test"]) {
      const { result, asked } = await dialed(host);
      expect([host, asked]).toEqual([host, []]);
      expect([host, (result as ProxyError).kind]).toEqual([host, "protocol"]);
    }
    for (const host of ["-", "_sip._tcp.test", "a-b.c_d.test", `${"x".repeat(63)}.test`, "trailing.dot.test."]) {
      const { asked } = await dialed(host);
      expect(asked[0]).toBe(`resolve ${host}`);
    }
  });

  test("localhost., LOCALHOST and names under .localhost are looked up as localhost (RFC 6761 §6.3), never as themselves", async () => {
    for (const host of ["localhost.", "LOCALHOST", "app.localhost", "a.b.LocalHost."]) {
      const { asked } = await dialed(host);
      expect([host, asked[0]]).toEqual([host, "resolve localhost"]);
    }
    const { asked } = await dialed("notlocalhost");
    expect(asked[0]).toBe("resolve notlocalhost");
  });

  test("a name is resolved and its address connected; an IP literal is connected at once", async () => {
    const byName = await dialed("workload.test");
    expect(byName.asked).toEqual(["resolve workload.test", "connect 127.0.0.1:9"]);
    expect((byName.result as ProxyError).kind).toBe("connectRefused");
    const literal = await dialed("127.0.0.1");
    expect(literal.asked).toEqual(["connect 127.0.0.1:9"]);
    const bracketed = await dialed("[::1]");
    expect(bracketed.asked).toEqual(["connect ::1:9"]);
  });

  test("localhost is both loopback addresses: the hosts file's order, then the one it left out; both without a hosts file", async () => {
    const only4 = await dialed("localhost", ["127.0.0.1"]);
    expect(only4.asked).toEqual(["resolve localhost", "connect 127.0.0.1:9", "connect ::1:9"]);
    const only6 = await dialed("app.localhost", ["::1"]);
    expect(only6.asked).toEqual(["resolve localhost", "connect ::1:9", "connect 127.0.0.1:9"]);
    const both = await dialed("localhost", ["::1", "127.0.0.1"]);
    expect(both.asked).toEqual(["resolve localhost", "connect ::1:9", "connect 127.0.0.1:9"]);
    const none = await dialed("localhost", null);
    expect(none.asked).toEqual(["resolve localhost", "connect 127.0.0.1:9", "connect ::1:9"]);
    expect((none.result as ProxyError).kind).toBe("connectRefused");
    // Any other name that fails to resolve still fails as dnsFailed.
    expect(((await dialed("workload.test", null)).result as ProxyError).kind).toBe("dnsFailed");
  });
});
