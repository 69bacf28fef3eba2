/**
 * The relay's inactivity limits (lib/relay.ts checkIdle, expire) count bytes delivered as well
 * as bytes read: a client that reads slowly drains the relay's queue while the server is paused
 * for it, and that tunnel is moving bytes. Before, only reads counted, and such a tunnel was cut
 * as idle (and reset, its queued bytes lost) once the queue stopped the reads. The checks are
 * called directly: no timers, no sockets.
 */
import { describe, expect, test } from "bun:test";
import { Relay } from "../lib/relay.ts";
import type { Conn, ConnEvents } from "../lib/runtime/types.ts";
import { INACTIVITY_CHECKS } from "../lib/sweep.ts";

/** A Conn whose kernel takes nothing: everything written stays queued until `deliver`. */
class QueueingConn implements Conn {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 1;
  readonly localAddress = "127.0.0.1";
  readonly localPort = 2;
  queuedBytes = 0;
  closed = false;
  paused = false;
  events: ConnEvents | null = null;
  readonly calls: string[] = [];
  setEvents(events: ConnEvents): void {
    this.events = events;
  }
  write(chunk: Uint8Array): boolean {
    this.queuedBytes += chunk.byteLength;
    return false;
  }
  writeFrom(_buf: Uint8Array, start: number, end: number): boolean {
    this.queuedBytes += end - start;
    return false;
  }
  /** The peer read n bytes: they leave the queue. */
  deliver(n: number): void {
    this.queuedBytes -= n;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  shutdown(): void {
    this.calls.push("shutdown");
  }
  end(): void {
    this.calls.push("end");
  }
  endLingering(): void {
    this.calls.push("endLingering");
  }
  destroy(): void {
    this.calls.push("destroy");
  }
  fault(): void {
    this.calls.push("fault");
  }
}

const OPTIONS = { maxBufferedBytes: 64 * 1024, idleTimeoutMs: 3_600_000, halfClosedTimeoutMs: 3_600_000 };

describe("relay inactivity: a slow reader draining the queue is not idle", () => {
  test("checks that see queued bytes delivered never cut it; checks that see nothing move do", () => {
    const down = new QueueingConn();
    const up = new QueueingConn();
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
