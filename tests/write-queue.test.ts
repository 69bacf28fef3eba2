/**
 * lib/runtime/write-queue.ts: what waits toward a peer that is not reading. Small chunks are
 * copied together, so the queue's length (its heap) follows the bytes, not the number of reads;
 * the bytes come out in order and unchanged however the head is consumed.
 */
import { describe, expect, test } from "bun:test";
import { COALESCE_BELOW_BYTES, COALESCE_BUFFER_BYTES, enqueue } from "../lib/runtime/write-queue.ts";

const joined = (queue: Uint8Array[]) => Buffer.concat(queue);

describe("enqueue", () => {
  test("64 KiB sent a byte at a time queue as 5 arrays, not 65 536, with every byte in order", () => {
    const queue: Uint8Array[] = [];
    const want: number[] = [];
    for (let i = 0; i < 64 * 1024 + 1; i++) {
      const byte = i % 251;
      enqueue(queue, Uint8Array.of(byte));
      want.push(byte);
    }
    // The first in line is queued as it came; the rest fill 16 KiB buffers.
    expect(queue.length).toBe(1 + Math.ceil((64 * 1024) / COALESCE_BUFFER_BYTES));
    expect([...joined(queue)]).toEqual(want);
  });

  test("a head being consumed (replaced by its rest, as a partial write does) keeps the appends after it intact", () => {
    const queue: Uint8Array[] = [Uint8Array.of(0)];
    for (let i = 1; i <= 10; i++) enqueue(queue, Uint8Array.of(i));
    expect(queue.length).toBe(2);
    queue.shift(); // the first chunk written
    queue[0] = queue[0]!.subarray(3); // 3 bytes of the next written
    for (let i = 11; i <= 13; i++) enqueue(queue, Uint8Array.of(i));
    expect(queue.length).toBe(1);
    expect([...joined(queue)]).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  });

  test("chunks of COALESCE_BELOW_BYTES and more are queued as they are (no copy); a small one after them starts a buffer of ours, never written into theirs", () => {
    const big = new Uint8Array(COALESCE_BELOW_BYTES).fill(7);
    const foreign = new Uint8Array(new ArrayBuffer(4096), 0, 10).fill(9); // room after it: not ours to fill
    const queue: Uint8Array[] = [Uint8Array.of(1)];
    enqueue(queue, big);
    expect(queue[1]).toBe(big);
    enqueue(queue, foreign); // small: copied into a buffer of ours
    enqueue(queue, Uint8Array.of(2, 3));
    expect(queue.length).toBe(3);
    expect(queue[2]!.buffer).not.toBe(foreign.buffer);
    expect([...new Uint8Array(foreign.buffer, 10, 2)]).toEqual([0, 0]);
    expect([...queue[2]!]).toEqual([...Array(10).fill(9), 2, 3]);
  });

  test("a buffer that is full starts the next one", () => {
    const queue: Uint8Array[] = [Uint8Array.of(0)];
    const piece = new Uint8Array(COALESCE_BELOW_BYTES - 1).fill(5);
    const pieces = Math.floor(COALESCE_BUFFER_BYTES / piece.byteLength) + 1;
    for (let i = 0; i < pieces; i++) enqueue(queue, piece);
    expect(queue.length).toBe(3);
    expect(queue[1]!.byteLength + queue[2]!.byteLength).toBe(pieces * piece.byteLength);
    expect(joined(queue).subarray(1).every((b) => b === 5)).toBe(true);
  });
});
