/**
 * DenoConn's writer (lib/runtime/deno-conn.ts), in-process with a fake Deno.TcpConn whose
 * writes complete only when the test says: one writer at a time, every byte written once, in
 * order, whatever is queued while a write is in flight. A small chunk queued while the head
 * (one of the write queue's own buffers, lib/runtime/write-queue.ts) is being written is merged
 * into it: that left the queue's length at 1 and started a second writer, which sent bytes twice
 * (found by an audit).
 */
import { describe, expect, test } from "bun:test";
import { DenoConn, type DenoTcpConn } from "../lib/runtime/deno-conn.ts";

function fakeSocket() {
  const writes: Uint8Array[] = [];
  const pending: Array<() => void> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const raw = {
    localAddr: { hostname: "127.0.0.1", port: 1, transport: "tcp" },
    remoteAddr: { hostname: "127.0.0.1", port: 2, transport: "tcp" },
    read: () => new Promise<number | null>(() => {}),
    write(data: Uint8Array): Promise<number> {
      writes.push(data.slice());
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return new Promise<number>((resolve) =>
        pending.push(() => {
          inFlight--;
          resolve(data.byteLength);
        }),
      );
    },
    closeWrite: async () => {},
    close() {},
    setNoDelay() {},
    setKeepAlive() {},
  };
  return { raw: raw as unknown as DenoTcpConn, writes, pending, maxInFlight: () => maxInFlight };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("DenoConn writes", () => {
  test("a small chunk queued while the head is being written joins it without a second writer; every byte goes once, in order", async () => {
    const sock = fakeSocket();
    const conn = new DenoConn(sock.raw);
    conn.setEvents({ onData() {}, onEnd() {}, onDrain() {}, onClose() {} });
    const A = new Uint8Array(4096).fill(0x41);
    const B = new Uint8Array(100).fill(0x42);
    const C = new Uint8Array(100).fill(0x43);
    conn.write(A);
    await tick();
    conn.write(B); // behind A: copied into a buffer of the write queue's own
    await tick();
    sock.pending.shift()!(); // A taken by the kernel: B's buffer is the head, being written
    await tick();
    conn.write(C); // merged into the head in flight
    await tick();
    for (let i = 0; i < 10 && sock.pending.length > 0; i++) {
      sock.pending.shift()!();
      await tick();
    }
    expect(sock.maxInFlight()).toBe(1);
    expect(Buffer.concat(sock.writes)).toEqual(Buffer.concat([A, B, C]));
    expect(conn.queuedBytes).toBe(0);
  });

  test("200 small chunks, each written while one write is in flight: one writer, each byte once, in order", async () => {
    const sock = fakeSocket();
    const conn = new DenoConn(sock.raw);
    conn.setEvents({ onData() {}, onEnd() {}, onDrain() {}, onClose() {} });
    const want: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) {
      const chunk = new Uint8Array(1 + (i % 50)).fill(i % 256);
      want.push(chunk);
      conn.write(chunk);
      if (i % 3 === 0 && sock.pending.length > 0) sock.pending.shift()!();
      await tick();
    }
    for (let i = 0; i < 400 && sock.pending.length > 0; i++) {
      sock.pending.shift()!();
      await tick();
    }
    expect(sock.maxInFlight()).toBe(1);
    expect(Buffer.concat(sock.writes)).toEqual(Buffer.concat(want));
    expect(conn.queuedBytes).toBe(0);
  });
});

describe("DenoConn while paused", () => {
  test("a paused socket is probed with a zero-length write; a reset found that way closes it (a paused socket is not read, so nothing else would see it)", async () => {
    const sock = fakeSocket();
    let probes = 0;
    let fail: ((err: Error) => void) | null = null;
    sock.raw.write = (data: Uint8Array) => {
      if (data.byteLength !== 0) throw new Error("only probes expected");
      probes++;
      return new Promise<number>((_resolve, reject) => (fail = reject));
    };
    const conn = new DenoConn(sock.raw);
    const closes: Array<Error | undefined> = [];
    conn.setEvents({ onData() {}, onEnd() {}, onDrain() {}, onClose: (err) => void closes.push(err) });
    conn.pause();
    for (let i = 0; i < 60 && probes === 0; i++) await Bun.sleep(50); // the probe interval is 1 s
    expect(probes).toBeGreaterThan(0);
    expect(closes).toEqual([]);
    fail!(Object.assign(new Error("connection reset by peer"), { code: "ECONNRESET" }));
    await tick();
    expect(conn.closed).toBe(true);
    expect(closes.length).toBe(1);
    expect((closes[0] as Error & { code?: string }).code).toBe("ECONNRESET");
  });

  test("once resumed it is no longer probed", async () => {
    const sock = fakeSocket();
    let probes = 0;
    sock.raw.write = () => {
      probes++;
      return Promise.resolve(0);
    };
    const conn = new DenoConn(sock.raw);
    conn.setEvents({ onData() {}, onEnd() {}, onDrain() {}, onClose() {} });
    conn.pause();
    conn.resume();
    await Bun.sleep(2_500); // two probe intervals
    expect(probes).toBe(0);
  });
});
