/**
 * How the relay (lib/relay.ts) ends each side when the other goes or a limit cuts the tunnel,
 * driven in-process with scripted Conns whose every call is recorded (no sockets, no timers).
 *
 * - A side that resets or closes: the survivor gets a lingering close (our queue flushed, a FIN
 *   after what the kernel still holds, what it still sends read and dropped until its FIN). A
 *   plain close over bytes it sent that nobody read (it was paused for the gone side) resets it,
 *   and the reset destroys what the kernel had not delivered: megabytes on loopback.
 * - The idle and half-closed limits close each side (as HAProxy and nginx do), and reset one
 *   that bytes still wait toward in our queue (a peer that stopped reading).
 * - The shutdown cut resets both sides: the close event of the first must not end the second
 *   gracefully (Bun reports a destroy at once; the workload then took a cut upload for whole).
 */
import { describe, expect, test } from "bun:test";
import { Relay } from "../lib/relay.ts";
import { ScriptedConn } from "./helpers/fake-conn.ts";

const OPTIONS = { maxBufferedBytes: 64 * 1024, idleTimeoutMs: 3_600_000, halfClosedTimeoutMs: 3_600_000 };

function tunnel() {
  const down = new ScriptedConn();
  const up = new ScriptedConn();
  const done: Array<Relay<null>> = [];
  const relay = new Relay(down, up, OPTIONS, { relayDone: (r) => void done.push(r) }, null);
  relay.start(null);
  return { down, up, relay, done };
}

describe("half-close: a FIN is passed on as a write shutdown, and the other direction keeps flowing", () => {
  test("client FIN: the workload gets shutdown, and what it sends still reaches the client; its FIN then ends both", () => {
    const { down, up, relay, done } = tunnel();
    down.events!.onEnd();
    expect(up.calls).toEqual(["shutdown"]);
    expect(down.calls).toEqual([]);
    up.events!.onData(new TextEncoder().encode("reply"));
    expect(new TextDecoder().decode(down.written.at(-1))).toBe("reply");
    up.events!.onEnd();
    expect(down.calls).toEqual(["end"]);
    expect(up.calls).toEqual(["shutdown", "end"]);
    expect(relay.termination).toBe("client-fin"); // the client finished first
    expect(done).toEqual([relay]);
  });

  test("workload FIN: the client gets shutdown, and what it sends still reaches the workload", () => {
    const { down, up } = tunnel();
    up.events!.onEnd();
    expect(down.calls).toEqual(["shutdown"]);
    expect(up.calls).toEqual([]);
    down.events!.onData(new TextEncoder().encode("more"));
    expect(new TextDecoder().decode(up.written.at(-1))).toBe("more");
  });
});

describe("a side that goes: the survivor gets a lingering close", () => {
  test("client reset while both directions are backed up: the workload lingers, the line says client-reset", () => {
    const { down, up, relay, done } = tunnel();
    down.queuedBytes = 128 * 1024; // the client stopped reading...
    up.events!.onData(new Uint8Array(1024)); // ...so the workload's next bytes pause it
    expect(up.paused).toBe(true);
    down.events!.onClose(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    // (What follows the lingering close's own close event is a no-op on a closed Conn.)
    expect(up.calls[0]).toBe("endLingering");
    expect(up.calls).not.toContain("destroy");
    expect(relay.termination).toBe("client-reset");
    expect(done).toEqual([relay]);
  });

  test("workload reset or close: the client lingers", () => {
    for (const err of [Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }), undefined]) {
      const { down, up, relay } = tunnel();
      up.events!.onClose(err);
      expect(down.calls[0]).toBe("endLingering");
      expect(down.calls).not.toContain("destroy");
      expect(relay.termination).toBe(err ? "server-reset" : "server-close");
    }
  });
});

describe("limits and the shutdown cut", () => {
  test("the idle limit: a close for a side with nothing queued toward it, a reset for one with bytes waiting", () => {
    const { down, up, relay, done } = tunnel();
    down.queuedBytes = 10; // the client stopped reading these
    relay.abort("idle-timeout");
    expect(down.calls).toEqual(["destroy"]);
    expect(up.calls).toEqual(["end"]);
    expect(relay.termination).toBe("idle-timeout");
    expect(done).toEqual([relay]);
  });

  test("the shutdown cut resets both sides, though the first one's close event comes at once", () => {
    const { down, up, relay, done } = tunnel();
    relay.abort("shutdown");
    expect(down.calls).toEqual(["destroy"]);
    expect(up.calls).toEqual(["destroy"]);
    expect(relay.termination).toBe("shutdown");
    expect(done).toEqual([relay]);
  });
});

describe("bytes counted are bytes carried", () => {
  test("what the workload sends after the client has gone is not counted toward it (nor the reverse)", () => {
    const { down, up, relay } = tunnel();
    up.events!.onData(new Uint8Array(100));
    down.events!.onClose(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    up.events?.onData(new Uint8Array(1_000)); // read before the lingering close took the socket over
    expect(relay.bytesDown).toBe(100);

    const other = tunnel();
    other.down.events!.onData(new Uint8Array(10));
    other.up.events!.onClose(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    other.down.events?.onData(new Uint8Array(1_000));
    expect(other.relay.bytesUp).toBe(10);
  });
});
