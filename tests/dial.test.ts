/**
 * lib/dial.ts with a fake runtime that records what it is asked: names that end in a number
 * (address.ts endsInNumber: IPv4 addresses in octal, hex or short forms) are refused before any
 * lookup or connect; names are resolved and IP literals connected as before. No real DNS or
 * socket: a lookup of such a name, on a machine whose resolver answers every name, would dial
 * whatever came back.
 */
import { describe, expect, test } from "bun:test";
import { endsInNumber } from "../lib/address.ts";
import { dial, shareMs } from "../lib/dial.ts";
import { ADDRESS_CONNECT_MIN_MS } from "../lib/limits.ts";
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

describe("each address's share of the connect deadline (ADDRESS_CONNECT_MIN_MS)", () => {
  test("shareMs: an equal part of what is left, at least the minimum, never more than what is left", () => {
    expect(ADDRESS_CONNECT_MIN_MS).toBe(2_000);
    expect(shareMs(10_000, 1)).toBe(10_000);
    expect(shareMs(10_000, 2)).toBe(5_000);
    expect(shareMs(9_000, 3)).toBe(3_000);
    expect(shareMs(10_000, 10)).toBe(2_000); // 1 000 each would be under the minimum
    expect(shareMs(1_500, 3)).toBe(1_500); // less than the minimum left: all of it
  });

  /** Resolves every name to `addresses`; every connect is refused at once; records each connect's timeout. */
  function timeouts(addresses: string[], timeoutMs: number, allowAddress?: (a: string) => boolean, shareDeadline = true): Promise<Array<[string, number]>> {
    const seen: Array<[string, number]> = [];
    const runtime = {
      resolve: () => Promise.resolve(addresses),
      connect(options: { hostname: string; timeoutMs: number }, done: (result: Conn | ProxyError) => void): void {
        seen.push([options.hostname, options.timeoutMs]);
        queueMicrotask(() => done(new ProxyError("connectRefused", "refused by the fake runtime")));
      },
    } as unknown as Runtime;
    return new Promise((resolve) => dial(runtime, { host: "several.example", port: 9 }, { timeoutMs, allowAddress, shareDeadline }, () => resolve(seen)));
  }

  test("three addresses and 9 s: about 3 s for the first, 4.5 s for the second, what is left for the last", async () => {
    const seen = await timeouts(["127.0.0.2", "127.0.0.3", "::1"], 9_000);
    expect(seen.map(([a]) => a)).toEqual(["127.0.0.2", "127.0.0.3", "::1"]);
    const [first, second, last] = seen.map(([, t]) => t) as [number, number, number];
    // Each is a share of what was left when it began: the refusals took next to nothing.
    expect(first).toBeLessThanOrEqual(3_000);
    expect(first).toBeGreaterThan(2_000);
    expect(second).toBeLessThanOrEqual(4_500);
    expect(second).toBeGreaterThan(first);
    expect(last).toBeLessThanOrEqual(9_000);
    expect(last).toBeGreaterThan(second);
  });

  test("the minimum: with 3 s for three addresses the first two get 2 s each", async () => {
    const seen = await timeouts(["127.0.0.2", "127.0.0.3", "127.0.0.4"], 3_000);
    expect(seen.slice(0, 2).map(([, t]) => t)).toEqual([2_000, 2_000]);
  });

  test("addresses the policy denies are not counted: the one address allowed gets the whole deadline", async () => {
    const seen = await timeouts(["127.0.0.2", "127.0.0.3", "127.0.0.4"], 9_000, (a) => a === "127.0.0.2");
    expect(seen).toHaveLength(1);
    expect(seen[0]![1]).toBeGreaterThan(4_500); // all that was left, not a third of it
  });

  /** Like `timeouts`, but the runtime reports connectTimeout for the addresses in `stalled` (as pending-connect.ts does at a connect's own timeout). */
  function withStalled(addresses: string[], stalled: string[], timeoutMs: number): Promise<{ seen: Array<[string, number]>; result: ProxyError }> {
    const seen: Array<[string, number]> = [];
    const runtime = {
      resolve: () => Promise.resolve(addresses),
      connect(options: { hostname: string; port: number; timeoutMs: number }, done: (result: Conn | ProxyError) => void): void {
        seen.push([options.hostname, options.timeoutMs]);
        const err = stalled.includes(options.hostname)
          ? new ProxyError("connectTimeout", `${options.hostname}:${options.port} not connected within ${options.timeoutMs} ms`)
          : new ProxyError("connectRefused", `${options.hostname}:${options.port}: refused by the fake runtime`);
        queueMicrotask(() => done(err));
      },
    } as unknown as Runtime;
    return new Promise((resolve) =>
      dial(runtime, { host: "several.example", port: 9 }, { timeoutMs, shareDeadline: true }, (result) => resolve({ seen, result: result as ProxyError })),
    );
  }

  test("one share per dial: after a share has run out (under Bun an abandoned connect), the next address gets all that is left", async () => {
    const { seen, result } = await withStalled(["127.0.0.2", "127.0.0.3", "127.0.0.4"], ["127.0.0.2", "127.0.0.3", "127.0.0.4"], 9_000);
    const [first, second, third] = seen.map(([, t]) => t) as [number, number, number];
    expect(first).toBeLessThanOrEqual(3_000);
    expect(second).toBeGreaterThan(4_500); // all that was left, not a half of it
    expect(seen).toHaveLength(3);
    expect(third).toBeGreaterThan(4_500);
    // Every address timed out: the detail says what each had.
    expect(result.kind).toBe("connectTimeout");
    expect(result.message).toMatch(
      /^several\.example:9: 127\.0\.0\.2:9 not connected within its \d+ ms share of the 9000 ms connect timeout; 127\.0\.0\.3:9 not connected within the (\d+ ms left of the )?9000 ms connect timeout; 127\.0\.0\.4:9 not connected within the (\d+ ms left of the )?9000 ms connect timeout$/,
    );
  });

  test("a share that ran out, then a refusal: the refusal is the answer (502 / 0x05)", async () => {
    const { seen, result } = await withStalled(["127.0.0.2", "127.0.0.3"], ["127.0.0.2"], 10_000);
    expect(seen.map(([a]) => a)).toEqual(["127.0.0.2", "127.0.0.3"]);
    expect(result.kind).toBe("connectRefused");
    // The share that ran out is not hidden behind the refusal: the detail lists both, in order
    // (the fake's refusal names its address, so it is not named twice).
    expect(result.message).toMatch(/^several\.example:9: 127\.0\.0\.2:9 not connected within its \d+ ms share of the 10000 ms connect timeout; 127\.0\.0\.3:9: refused by the fake runtime$/);
  });

  test("refusals do not use up the share: the stalled third address of four still gets a share, then the last all that is left", async () => {
    const { seen } = await withStalled(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"], ["127.0.0.4"], 10_000);
    const times = seen.map(([, t]) => t);
    expect(times[2]!).toBeLessThanOrEqual(5_000); // half of what was left
    expect(times[3]!).toBeGreaterThan(5_000);
  });

  test("a share that ran out is the answer over a failure that says less (connectFailed): the detail names each address, the share and the other failure", async () => {
    let calls = 0;
    const runtime = {
      resolve: () => Promise.resolve(["127.0.0.2", "127.0.0.3"]),
      connect(_options: unknown, done: (result: Conn | ProxyError) => void): void {
        const err = ++calls === 1 ? new ProxyError("connectTimeout", "timed out") : new ProxyError("connectFailed", "no reason given");
        queueMicrotask(() => done(err));
      },
    } as unknown as Runtime;
    const result = await new Promise<ProxyError>((resolve) =>
      dial(runtime, { host: "several.example", port: 9 }, { timeoutMs: 10_000, shareDeadline: true }, (r) => resolve(r as ProxyError)),
    );
    expect(result.kind).toBe("connectTimeout");
    expect(result.message).toMatch(/^several\.example:9: 127\.0\.0\.2:9 not connected within its \d+ ms share of the 10000 ms connect timeout; 127\.0\.0\.3:9: no reason given$/);
  });

  test("the detail's notes: a denied address with its port, and the addresses a passed deadline left untried counted, not dropped", async () => {
    const { runtime: refusing } = recordingRuntime(["127.0.0.2", "::1"]);
    const denied = await new Promise<ProxyError>((resolve) =>
      dial(refusing, { host: "several.example", port: 9 }, { timeoutMs: 5_000, allowAddress: (a) => a !== "127.0.0.2" }, (r) => resolve(r as ProxyError)),
    );
    expect(denied.kind).toBe("connectRefused");
    expect(denied.message).toBe("several.example:9: 127.0.0.2:9 is denied by policy; [::1]:9: refused by the fake runtime");

    // The first connect fails after the whole deadline (a clock moved by hand: lib/clock.ts reads
    // performance.now): the other two are never tried, and the detail says so.
    const realNow = performance.now;
    let now = 1_000;
    performance.now = () => now;
    try {
      const slow = {
        resolve: () => Promise.resolve(["127.0.0.2", "127.0.0.3", "127.0.0.4"]),
        connect(_options: unknown, done: (result: Conn | ProxyError) => void): void {
          now += 6_000;
          queueMicrotask(() => done(new ProxyError("connectFailed", "no reason given")));
        },
      } as unknown as Runtime;
      const untried = await new Promise<ProxyError>((resolve) => dial(slow, { host: "several.example", port: 9 }, { timeoutMs: 5_000 }, (r) => resolve(r as ProxyError)));
      expect(untried.kind).toBe("connectTimeout");
      expect(untried.message).toBe("several.example:9: 127.0.0.2:9: no reason given; 127.0.0.3:9 and 1 more not tried: the 5000 ms connect timeout had passed");
    } finally {
      performance.now = realNow;
    }
  });

  test("without shareDeadline (reverse listeners: the workload) each address gets all that is left", async () => {
    const seen = await timeouts(["127.0.0.2", "::1"], 9_000, undefined, false);
    expect(seen.map(([, t]) => t > 4_500)).toEqual([true, true]);
  });

  test("an IP literal is one connect with all of the deadline", async () => {
    const seen: number[] = [];
    const runtime = {
      connect(options: { timeoutMs: number }, done: (result: Conn | ProxyError) => void): void {
        seen.push(options.timeoutMs);
        queueMicrotask(() => done(new ProxyError("connectRefused", "refused by the fake runtime")));
      },
    } as unknown as Runtime;
    await new Promise((resolve) => dial(runtime, { host: "127.0.0.1", port: 9 }, { timeoutMs: 7_000, shareDeadline: true }, resolve));
    expect(seen).toHaveLength(1);
    expect(seen[0]!).toBeGreaterThan(3_500);
    expect(seen[0]!).toBeLessThanOrEqual(7_000);
  });
});
