/**
 * The write queue of a connection whose peer is not taking bytes, for both adapters. Chunks are
 * queued as views, but small ones are copied together: a peer sending 1-byte segments toward a
 * stalled one would otherwise queue one array per byte (each ~100 bytes of heap for one byte of
 * data: 64 KiB of them cost ~5 MB per direction, found by an audit), while --max-buffered-bytes
 * counts bytes. Only chunks that must wait are queued, so the path that writes at once is
 * untouched.
 */

/** Chunks smaller than this are copied into a shared buffer rather than queued as they are. */
export const COALESCE_BELOW_BYTES = 1024;
/** Size of the buffers small chunks are copied into. */
export const COALESCE_BUFFER_BYTES = 16 * 1024;

/** Buffers made here: only these are ever written into after being queued. */
const OURS = new WeakSet<ArrayBufferLike>();

/** Appends `chunk` to `queue` (the caller counts its bytes). A chunk first in line is queued as it is. */
export function enqueue(queue: Uint8Array[], chunk: Uint8Array): void {
  const size = chunk.byteLength;
  if (size >= COALESCE_BELOW_BYTES || queue.length === 0) {
    queue.push(chunk);
    return;
  }
  const last = queue[queue.length - 1]!;
  // The last queued view of one of our buffers ends where that buffer's data ends: append there
  // (a view already handed to a write covers only its own range).
  if (OURS.has(last.buffer)) {
    const end = last.byteOffset + last.byteLength;
    if (end + size <= last.buffer.byteLength) {
      new Uint8Array(last.buffer, end, size).set(chunk);
      queue[queue.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.byteLength + size);
      return;
    }
  }
  const buffer = new Uint8Array(COALESCE_BUFFER_BYTES);
  OURS.add(buffer.buffer);
  buffer.set(chunk);
  queue.push(buffer.subarray(0, size));
}
