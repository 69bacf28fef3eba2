/**
 * PendingConnect (lib/runtime/pending-connect.ts), in-process: a connect past its deadline is
 * abandoned and counted until the runtime reports it (opened: destroyed; failed) or
 * ABANDONED_CONNECT_FORGET_MS pass, once whatever happens; over the budget a new dial is
 * refused as limitExceeded without being started. The deadline is a short --connect-timeout;
 * the waits are bounded and nothing asserts how long anything took.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ERROR_TABLE, ProxyError } from "../lib/errors.ts";
import { ABANDONED_CONNECTS_MAX } from "../lib/limits.ts";
import { PendingConnect, abandonedConnects, setAbandonedConnectBudget } from "../lib/runtime/pending-connect.ts";
import type { Conn } from "../lib/runtime/types.ts";
import { ScriptedConn } from "./helpers/fake-conn.ts";

const OPTIONS = { hostname: "127.0.0.1", port: 9, timeoutMs: 20 };

/** Starts a connect that nothing will report, and waits (≤ 5 s) for its deadline's answer. */
async function timedOut(options: typeof OPTIONS & { owner?: { abandonedConnects: number; abandonedShare: number } } = OPTIONS): Promise<{ pending: PendingConnect; result: Conn | ProxyError }> {
  let settle!: (result: Conn | ProxyError) => void;
  const answered = new Promise<Conn | ProxyError>((resolve) => (settle = resolve));
  const pending = PendingConnect.start(options, (result) => settle(result));
  expect(pending).not.toBeNull();
  const result = await Promise.race([answered, Bun.sleep(5_000).then(() => new ProxyError("internal", "no answer in 5 s"))]);
  return { pending: pending!, result };
}

afterEach(() => setAbandonedConnectBudget(ABANDONED_CONNECTS_MAX));

describe("abandoned connects", () => {
  test("each is charged to its owner (the listener, whose cap counts it) while counted, once, whatever reports it", async () => {
    const owner = { abandonedConnects: 0, abandonedShare: 100 };
    const a = await timedOut({ ...OPTIONS, owner });
    const b = await timedOut({ ...OPTIONS, owner });
    const c = await timedOut({ ...OPTIONS, owner });
    expect(owner.abandonedConnects).toBe(3);
    a.pending.opened(new ScriptedConn());
    b.pending.failed(new Error("ECONNREFUSED"));
    c.pending.expire(); // the forget deadline
    expect(owner.abandonedConnects).toBe(0);
    a.pending.expire();
    b.pending.opened(new ScriptedConn());
    c.pending.failed(new Error("ETIMEDOUT"));
    expect(owner.abandonedConnects).toBe(0); // never below
  });

  test("an owner at its share of the budget gets limitExceeded without a dial, while another owner still dials", async () => {
    const full = { abandonedConnects: 0, abandonedShare: 1 };
    const held = await timedOut({ ...OPTIONS, owner: full });
    expect(full.abandonedConnects).toBe(1);
    let refused: ProxyError | Conn | undefined;
    expect(PendingConnect.start({ ...OPTIONS, owner: full }, (r) => (refused = r))).toBeNull();
    await Bun.sleep(0);
    expect((refused as ProxyError).kind).toBe("limitExceeded");
    expect((refused as ProxyError).message).toContain("1 earlier connects that timed out are still held open by the kernel (this listener's share)");
    const other = PendingConnect.start({ ...OPTIONS, owner: { abandonedConnects: 0, abandonedShare: 1 } }, () => {});
    expect(other).not.toBeNull();
    other!.opened(new ScriptedConn());
    held.pending.failed(new Error("ECONNREFUSED"));
    expect(full.abandonedConnects).toBe(0);
  });

  test("past its deadlineMs a connect answers connectTimeout and is counted until the runtime opens it, which destroys it", async () => {
    const before = abandonedConnects();
    const { pending, result } = await timedOut();
    expect(result).toBeInstanceOf(ProxyError);
    expect((result as ProxyError).kind).toBe("connectTimeout");
    expect(abandonedConnects()).toBe(before + 1);
    const late = new ScriptedConn();
    pending.opened(late);
    expect(late.closed).toBe(true); // nobody wants it
    expect(abandonedConnects()).toBe(before);
    // Reported again (a runtime reporting twice, or the forget deadline after the report): counted once.
    pending.failed(new Error("ECONNREFUSED"));
    pending.expire();
    expect(abandonedConnects()).toBe(before);
  });

  test("a failure reported after the deadlineMs ends the count; the forget deadlineMs ends it when the runtime says nothing", async () => {
    const before = abandonedConnects();
    const a = await timedOut();
    const b = await timedOut();
    expect(abandonedConnects()).toBe(before + 2);
    a.pending.failed(new Error("ETIMEDOUT"));
    expect(abandonedConnects()).toBe(before + 1);
    // ABANDONED_CONNECT_FORGET_MS later the sweep calls expire() again: no longer counted.
    b.pending.expire();
    expect(abandonedConnects()).toBe(before);
    const late = new ScriptedConn();
    b.pending.opened(late); // a report after that still destroys the connection, and counts nothing
    expect(late.closed).toBe(true);
    expect(abandonedConnects()).toBe(before);
  });

  test("over the budget a dial is refused as limitExceeded (503, SOCKS5 0x01) without being started, and never before start returns", async () => {
    const before = abandonedConnects();
    setAbandonedConnectBudget(before + 1);
    const held = await timedOut();
    let answer: Conn | ProxyError | undefined;
    const refused = PendingConnect.start(OPTIONS, (result) => (answer = result));
    expect(refused).toBeNull();
    expect(answer).toBeUndefined();
    await Promise.resolve();
    expect(answer).toBeInstanceOf(ProxyError);
    expect((answer as ProxyError).kind).toBe("limitExceeded");
    expect((answer as ProxyError).message).toContain("127.0.0.1:9");
    // The kernel lets go of the held one: dials start again.
    held.pending.failed(new Error("ECONNREFUSED"));
    const next = PendingConnect.start(OPTIONS, () => {});
    expect(next).not.toBeNull();
    next!.failed(new Error("ECONNREFUSED")); // settled before its deadline: never abandoned
    expect(abandonedConnects()).toBe(before);
  });

  test("a connect settled before its deadlineMs is never counted", async () => {
    const before = abandonedConnects();
    const results: Array<Conn | ProxyError> = [];
    const opened = PendingConnect.start(OPTIONS, (r) => results.push(r))!;
    const conn = new ScriptedConn();
    opened.opened(conn);
    const failed = PendingConnect.start(OPTIONS, (r) => results.push(r))!;
    failed.failed(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
    await Bun.sleep(100); // past both deadlines (20 ms): the sweep must not time them out
    expect(results).toHaveLength(2);
    expect(results[0]).toBe(conn);
    expect(conn.closed).toBe(false);
    expect((results[1] as ProxyError).kind).toBe("connectRefused");
    expect(abandonedConnects()).toBe(before);
  });
});

describe("connect failures", () => {
  test("an OS error keeps its kind; one without a code is the destination's (connectFailed: 502, SOCKS5 0x01), not internal (500)", () => {
    const answers: (Conn | ProxyError)[] = [];
    const refused = Object.assign(new Error("Failed to connect"), { code: "ECONNREFUSED" });
    PendingConnect.start(OPTIONS, (r) => answers.push(r))!.failed(refused);
    PendingConnect.start(OPTIONS, (r) => answers.push(r))!.failed(new Error("Failed to connect"));
    const kinds = answers.map((a) => (a as ProxyError).kind);
    expect(kinds).toEqual(["connectRefused", "connectFailed"]);
    expect((answers[1] as ProxyError).message).toBe("127.0.0.1:9: Failed to connect");
    expect(ERROR_TABLE.connectFailed).toMatchObject({ http: 502, socks5: 0x01 });
  });
});
