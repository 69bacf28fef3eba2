/**
 * The relay's inactivity limits (lib/relay.ts checkIdle, expire) count bytes delivered as well
 * as bytes read: a client that reads slowly drains the relay's queue while the server is paused
 * for it, and that tunnel is moving bytes. Before, only reads counted, and such a tunnel was cut
 * as idle (and reset, its queued bytes lost) once the queue stopped the reads. The checks are
 * called directly: no timers, no sockets.
 */
import { describe, expect, test } from "bun:test";
import { Relay } from "../lib/relay.ts";
import { ScriptedConn } from "./helpers/fake-conn.ts";
import { INACTIVITY_CHECKS } from "../lib/sweep.ts";

const OPTIONS = { maxBufferedBytes: 64 * 1024, idleTimeoutMs: 3_600_000, halfClosedTimeoutMs: 3_600_000 };

describe("relay inactivity: a slow reader draining the queue is not idle", () => {
  test("checks that see queued bytes delivered never cut it; checks that see nothing move do", () => {
    const down = new ScriptedConn({ queueWrites: true, closes: false });
    const up = new ScriptedConn({ queueWrites: true, closes: false });
    const done: Relay<null>[] = [];
    const relay = new Relay(down, up, OPTIONS, { relayDone: (r) => void done.push(r) }, null);
    relay.start(null);
    up.events!.onData(new Uint8Array(256 * 1024)); // the server floods; the client has read nothing
    expect(up.paused).toBe(true); // backpressure: no more reads from the server
    // The client reads 1 KiB between checks, many times the limit's worth of checks.
    for (let i = 0; i < INACTIVITY_CHECKS * 10; i++) {
      down.deliver(1024);
      relay.checkIdle();
    }
    expect(done).toEqual([]);
    expect(relay.termination).toBeNull();
    // Then the client stops reading: INACTIVITY_CHECKS still checks end it.
    for (let i = 0; i < INACTIVITY_CHECKS; i++) relay.checkIdle();
    expect(relay.termination).toBe("idle-timeout");
    expect(done).toEqual([relay]);
  });
});
