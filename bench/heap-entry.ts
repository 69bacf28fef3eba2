/**
 * proxy.ts with a heap report on SIGUSR2, for bench/tunnel-heap.ts: a full collection, then
 * one line `HEAP {json}` on stderr (bun:jsc heapStats: heap bytes, object count, objects by
 * type). Bun only; the proxy itself has no such hook.
 *
 *   bun bench/heap-entry.ts [proxy flags]
 */
import { heapStats } from "bun:jsc";

function report(prefix: string): void {
  Bun.gc(true);
  const s = heapStats();
  process.stderr.write(`${prefix} ${JSON.stringify({ heapBytes: s.heapSize, objects: s.objectCount, types: s.objectTypeCounts })}\n`);
}
// Once at start: what the report itself makes on first use (stderr's stream) is not counted later.
report("HEAP-START");
process.on("SIGUSR2", () => report("HEAP"));
await import("../proxy.ts");
