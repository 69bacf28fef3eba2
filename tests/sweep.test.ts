/**
 * lib/sweep.ts: the shared intervals behind idle limits and connect
 * deadlines. No timing assertion beyond "never early": waits are bounded and only check order.
 */
import { describe, expect, test } from "bun:test";
import { onFault } from "../lib/fault.ts";
import { deadlinesFor, type Expiring, SweptSet } from "../lib/sweep.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe("SweptSet", () => {
  test("visits every item each tick, stops visiting deleted items, and may delete while visiting", async () => {
    const seen = new Map<string, number>();
    const set = new SweptSet<string>(5, (item, _now, s) => {
      seen.set(item, (seen.get(item) ?? 0) + 1);
      if (item === "once") s.delete(item);
    });
    for (const item of ["a", "b", "once"]) set.add(item);
    await until(() => (seen.get("a") ?? 0) >= 3 && (seen.get("b") ?? 0) >= 3, "three sweeps");
    expect(seen.get("once")).toBe(1);
    set.delete("a");
    const a = seen.get("a")!;
    const b = seen.get("b")!;
    await until(() => seen.get("b")! >= b + 2, "two more sweeps");
    expect(seen.get("a")).toBe(a);
    set.delete("b");
  });

  test("an item whose visit throws is reported and dropped; the others are still visited", async () => {
    const faults: Array<{ err: unknown; site: string }> = [];
    const previous = onFault((err, site) => void faults.push({ err, site }));
    try {
      const boom = new Error("boom in a visit");
      const seen = new Map<string, number>();
      const set = new SweptSet<string>(5, (item) => {
        seen.set(item, (seen.get(item) ?? 0) + 1);
        if (item === "bad") throw boom;
      });
      // "bad" first: were the throw to escape, "after" would never be visited.
      for (const item of ["bad", "after"]) set.add(item);
      await until(() => (seen.get("after") ?? 0) >= 3, "three sweeps of the other item");
      expect(seen.get("bad")).toBe(1);
      expect(faults).toEqual([{ err: boom, site: "timer" }]);
      set.delete("after");
    } finally {
      onFault(previous);
    }
  });
});

describe("deadlinesFor (connect deadlines)", () => {
  function item(timeoutMs: number, log: string[], name: string): Expiring & { firedAt: number | null } {
    const it = {
      deadline: Date.now() + timeoutMs,
      firedAt: null as number | null,
      expire() {
        it.firedAt = Date.now();
        log.push(name);
      },
    };
    return it;
  }

  test("an item expires once, never before its deadline; a deleted item never expires", async () => {
    const log: string[] = [];
    const set = deadlinesFor(40);
    const due = item(40, log, "due");
    const cancelled = item(40, log, "cancelled");
    set.add(due);
    set.add(cancelled);
    set.delete(cancelled);
    await until(() => due.firedAt !== null, "the deadline");
    expect(due.firedAt!).toBeGreaterThanOrEqual(due.deadline);
    await until(() => Date.now() > due.deadline + 100, "a few more ticks");
    expect(log).toEqual(["due"]);
  });

  test("timeouts of one length share one set; items with later deadlines wait for them", async () => {
    expect(deadlinesFor(10_000)).toBe(deadlinesFor(10_000));
    const log: string[] = [];
    const set = deadlinesFor(60);
    const early = item(30, log, "early");
    const late = item(200, log, "late");
    set.add(late);
    set.add(early);
    await until(() => log.length === 2, "both deadlines", 5_000);
    expect(log).toEqual(["early", "late"]);
    expect(late.firedAt!).toBeGreaterThanOrEqual(late.deadline);
  });
});
