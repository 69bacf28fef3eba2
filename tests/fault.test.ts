/**
 * lib/fault.ts: what happens after a bug is caught. The barriers themselves (each socket event of
 * both runtime adapters, and the process-wide handlers) are checked under Bun and Deno by
 * tests/fixtures/runtime-conformance.ts; the shared timers' barrier by tests/sweep.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { logFaults } from "../lib/app.ts";
import { FaultError, faultTermination, onFault, reportFault } from "../lib/fault.ts";
import type { Fields, Logger } from "../lib/log.ts";
import { DEFAULT_LIMITS } from "../lib/limits.ts";
import { Holding, Relay } from "../lib/relay.ts";
import type { Conn, Runtime } from "../lib/runtime/types.ts";
import { type ListenerContext, openTunnel, relayOptions } from "../lib/tunnel.ts";
import { Tracker } from "../lib/tracker.ts";
import { ScriptedConn } from "./helpers/fake-conn.ts";
import { collectingFaults } from "./helpers/faults.ts";

function capturingLogger(): Logger & { lines: Array<{ level: string; msg: string; fields?: Fields }> } {
  const lines: Array<{ level: string; msg: string; fields?: Fields }> = [];
  const at = (level: string) => (msg: string, fields?: Fields) => void lines.push({ level, msg, fields });
  return { lines, level: 3, droppedLines: 0, error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") };
}

describe("after a fault", () => {
  test("the app logs it at error level with the site, message and stack, and counts it for /metrics", () => {
    const log = capturingLogger();
    const tracker = new Tracker(log);
    const previous = onFault(() => {});
    try {
      logFaults(log, tracker);
      const boom = new TypeError("cannot read properties of undefined");
      reportFault(boom, "data");
      expect(tracker.internalErrors).toBe(1);
      expect(log.lines).toHaveLength(1);
      expect(log.lines[0]).toMatchObject({ level: "error", msg: "internal error", fields: { site: "data", error: boom.message, stack: boom.stack } });
    } finally {
      onFault(previous);
    }
  });

  test("a sink that throws does not take the reporter down", () => {
    const previous = onFault(() => {
      throw new Error("the logger failed");
    });
    try {
      expect(() => reportFault(new Error("boom"), "timer")).not.toThrow();
    } finally {
      onFault(previous);
    }
  });

  test("a tunnel whose client side was closed by a fault ends `internal`, and its server side is closed", () => {
    const down = new ScriptedConn();
    const up = new ScriptedConn();
    const finished: Relay<null>[] = [];
    const relay = new Relay(down, up, { maxBufferedBytes: 1 << 20, idleTimeoutMs: 60_000, halfClosedTimeoutMs: 60_000 }, { relayDone: (r) => void finished.push(r) }, null);
    relay.start(null);
    // What an adapter does after a handler threw: the socket is reset, its owner hears onClose.
    down.closed = true;
    down.events!.onClose(new FaultError(new Error("boom")));
    expect(up.calls).toContain("end");
    expect(finished).toEqual([relay]);
    expect(relay.termination).toBe("internal");
  });

  test("a tunnel whose idle check throws is cut: the client faulted, the server ended, the tunnel `internal`", async () => {
    await collectingFaults(async (faults) => {
      const down = new ScriptedConn();
      const up = new ScriptedConn();
      const finished: Relay<null>[] = [];
      // A 20 ms idle limit: checked every 5 ms by its shared sweeper (lib/sweep.ts).
      const relay = new Relay(down, up, { maxBufferedBytes: 1 << 20, idleTimeoutMs: 20, halfClosedTimeoutMs: 60_000 }, { relayDone: (r) => void finished.push(r) }, null);
      relay.start(null);
      const boom = new Error("boom in the idle check");
      // The check reads the byte counters: a bug there is a throw in the timer.
      Object.defineProperty(relay, "bytesDown", {
        get() {
          throw boom;
        },
      });
      const deadlineMs = Date.now() + 5_000;
      while (finished.length === 0 && Date.now() < deadlineMs) await Bun.sleep(5);
      expect(faults).toEqual([{ err: boom, site: "timer" }]);
      expect(down.calls[0]).toBe("fault");
      expect(up.calls).toContain("end");
      expect(finished).toEqual([relay]);
      expect(relay.termination).toBe("internal");
    });
  });

  test("a throw in a dial's callback (here the driver's success reply) closes the client and the new upstream, `internal`", async () => {
    await collectingFaults(async (faults) => {
      const down = new ScriptedConn();
      const up = new ScriptedConn();
      const runtime = {
        connect(_options: unknown, done: (result: Conn) => void) {
          queueMicrotask(() => done(up));
        },
      } as unknown as Runtime;
      const log = capturingLogger();
      const tracker = new Tracker(log);
      tracker.register("forward", "socks");
      const workload = { host: "127.0.0.1", port: 9 };
      const ctx = {
        name: "forward",
        protocol: "socks",
        limits: DEFAULT_LIMITS,
        runtime,
        log,
        tracker,
        workload,
        workloadKey: "127.0.0.1:9",
        dialOptions: { timeoutMs: 60_000 },
        relayOptions: relayOptions(DEFAULT_LIMITS),
        draining: () => false,
      } as unknown as ListenerContext;
      const rec = tracker.open("forward", "socks", "127.0.0.1:1");
      const held = new Holding(down, DEFAULT_LIMITS.maxBufferedBytes);
      down.setEvents(held);
      const boom = new Error("boom in the success reply");
      openTunnel(ctx, rec, down, held, workload, {
        connected() {
          throw boom;
        },
      });
      const deadlineMs = Date.now() + 5_000;
      while (rec.endedMs === null && Date.now() < deadlineMs) await Bun.sleep(1);
      expect(faults).toEqual([{ err: boom, site: "connect" }]);
      expect(down.calls[0]).toBe("fault");
      expect(up.closed).toBe(true);
      expect(rec.termination).toBe("internal");
    });
  });

  test("faultTermination: `internal` for a FaultError only", () => {
    expect(faultTermination(new FaultError(new Error("x")), "client-aborted")).toBe("internal");
    expect(faultTermination(new Error("ECONNRESET"), "client-aborted")).toBe("client-aborted");
    expect(faultTermination(undefined, "client-fin")).toBe("client-fin");
    const err = new FaultError("not an Error");
    expect(err.message).toBe("internal error: not an Error");
    expect(err.cause).toBe("not an Error");
  });
});
