/**
 * lib/sweep.ts: the shared intervals behind idle limits and connect
 * deadlines. No timing assertion beyond "never early": waits are bounded and only check order.
 */
import { describe, expect, setSystemTime, test } from "bun:test";
import { collectingFaults } from "./helpers/faults.ts";
import { nowMs } from "../lib/clock.ts";
import { Slots } from "../lib/slots.ts";
import { PhaseClock } from "../lib/listeners/phase-clock.ts";
import { deadlinesFor, type Expiring, SweptSet } from "../lib/sweep.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Bounded by the monotonic clock: a test below freezes Date with setSystemTime. */
async function until(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe("SweptSet", () => {
  test("visits every item each tick, stops visiting deleted items, and may delete while visiting", async () => {
    const seen = new Map<string, number>();
    const set = new SweptSet<string>(5, (item, _now, s, slot) => {
      seen.set(item, (seen.get(item) ?? 0) + 1);
      if (item === "once") s.delete(slot, item);
    });
    const slots = new Map(["a", "b", "once"].map((item) => [item, set.add(item)]));
    expect(set.size).toBe(3);
    await until(() => (seen.get("a") ?? 0) >= 3 && (seen.get("b") ?? 0) >= 3, "three sweeps");
    expect(seen.get("once")).toBe(1);
    expect(set.size).toBe(2);
    set.delete(slots.get("a")!, "a");
    const a = seen.get("a")!;
    const b = seen.get("b")!;
    await until(() => seen.get("b")! >= b + 2, "two more sweeps");
    expect(seen.get("a")).toBe(a);
    set.delete(slots.get("b")!, "b");
    expect(set.size).toBe(0);
  });

  test("a slot is reused once cleared, and a stale delete leaves the slot's new item alone", () => {
    const set = new SweptSet<string>(60_000, () => {});
    const first = set.add("first");
    set.delete(first, "first");
    const second = set.add("second");
    expect(second).toBe(first);
    set.delete(first, "first"); // the first item's owner again: not its slot any more
    set.delete(-1, "second");
    expect(set.size).toBe(1);
    set.delete(second, "second");
    expect(set.size).toBe(0);
  });

  test("an item whose visit throws is reported and dropped; the others are still visited", async () => {
    await collectingFaults(async (faults) => {
      const boom = new Error("boom in a visit");
      const seen = new Map<string, number>();
      const set = new SweptSet<string>(5, (item) => {
        seen.set(item, (seen.get(item) ?? 0) + 1);
        if (item === "bad") throw boom;
      });
      // "bad" first: were the throw to escape, "after" would never be visited.
      const slots = ["bad", "after"].map((item) => set.add(item));
      await until(() => (seen.get("after") ?? 0) >= 3, "three sweeps of the other item");
      expect(seen.get("bad")).toBe(1);
      expect(faults).toEqual([{ err: boom, site: "timer" }]);
      expect(set.size).toBe(1);
      set.delete(slots[1]!, "after");
    });
  });

  test("an item whose visit throws goes to the set's faulted hook; a hook that throws too gets both reported", async () => {
    await collectingFaults(async (faults) => {
      const boom = new Error("boom in a visit");
      const again = new Error("boom in the hook");
      const told: Array<[string, unknown]> = [];
      const set = new SweptSet<string>(
        5,
        (item) => {
          if (item.startsWith("bad")) throw boom;
        },
        (item, err) => {
          told.push([item, err]);
          if (item === "bad, and its hook") throw again;
        },
      );
      set.add("bad");
      set.add("bad, and its hook");
      await until(() => told.length >= 2, "both hooks");
      expect(new Map(told)).toEqual(new Map<string, unknown>([["bad", boom], ["bad, and its hook", boom]]));
      expect(faults).toEqual([{ err: boom, site: "timer" }, { err: again, site: "timer" }]);
      expect(set.size).toBe(0);
    });
  });
});

describe("Slots", () => {
  test("items deleted or added while visited: the deleted are skipped, the rest visited once", () => {
    const slots = new Slots<string>();
    const at = new Map(["a", "b", "c", "d"].map((item) => [item, slots.add(item)]));
    const seen: string[] = [];
    slots.forEach((item, slot) => {
      seen.push(item);
      expect(at.get(item)).toBe(slot);
      if (item === "a") slots.delete(at.get("c")!, "c");
    });
    expect(seen).toEqual(["a", "b", "d"]);
    expect(slots.size).toBe(3);
    expect(slots.toArray().sort()).toEqual(["a", "b", "d"]);
    expect(slots.delete(at.get("c")!, "c")).toBe(false);
  });

  test("emptied, it starts again from slot 0", () => {
    const slots = new Slots<number>();
    const taken = [1, 2, 3].map((n) => slots.add(n));
    expect(taken).toEqual([0, 1, 2]);
    for (const [i, slot] of taken.entries()) slots.delete(slot, i + 1);
    expect(slots.size).toBe(0);
    expect(slots.add(4)).toBe(0);
  });
});

describe("deadlinesFor (connect deadlines)", () => {
  function item(timeoutMs: number, log: string[], name: string): Expiring & { firedAt: number | null } {
    const it = {
      deadlineMs: nowMs() + timeoutMs,
      firedAt: null as number | null,
      expire() {
        it.firedAt = nowMs();
        log.push(name);
      },
      faulted() {
        log.push(`${name} faulted`);
      },
    };
    return it;
  }

  test("an item whose expire throws is told (faulted), and the fault is its to report", async () => {
    const boom = new Error("boom in expire");
    const told: unknown[] = [];
    await collectingFaults(async (faults) => {
      const set = deadlinesFor(20);
      const bad: Expiring = {
        deadlineMs: nowMs(),
        expire() {
          throw boom;
        },
        faulted(err) {
          told.push(err);
        },
      };
      set.add(bad);
      await until(() => told.length > 0, "the faulted call");
      expect(told).toEqual([boom]);
      expect(faults).toEqual([]); // reporting is the item's (Conn.fault reports)
    });
  });

  test("an item expires once, never before its deadlineMs; a deleted item never expires", async () => {
    const log: string[] = [];
    const set = deadlinesFor(40);
    const due = item(40, log, "due");
    const cancelled = item(40, log, "cancelled");
    set.add(due);
    set.delete(set.add(cancelled), cancelled);
    await until(() => due.firedAt !== null, "the deadlineMs");
    expect(due.firedAt!).toBeGreaterThanOrEqual(due.deadlineMs);
    await until(() => nowMs() > due.deadlineMs + 100, "a few more ticks");
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
    expect(late.firedAt!).toBeGreaterThanOrEqual(late.deadlineMs);
  });
});

describe("PhaseClock", () => {
  test("a phase's expiry that throws reaches the clock's fault hook, once; the clock then waits for nothing", async () => {
    const boom = new Error("boom in the 408");
    const told: unknown[] = [];
    const expired: string[] = [];
    const clock = new PhaseClock<"head">(
      (phase) => {
        expired.push(phase);
        throw boom;
      },
      (err) => void told.push(err),
    );
    clock.set("head", 20);
    await until(() => told.length > 0, "the fault hook");
    expect(expired).toEqual(["head"]);
    expect(told).toEqual([boom]);
    expect(clock.phase).toBeNull();
    clock.stop(); // a stale stop after the sweep dropped it: harmless
  });
});

describe("deadlines run on the monotonic clock (lib/clock.ts)", () => {
  test("a wall-clock step of an hour does not expire a deadlineMs early", async () => {
    // Both items in one set (same timeout), so one sweep visits both with the same `now`: the
    // sentinel's expiry proves a sweep ran after the step, and the other must have outlived it.
    const set = deadlinesFor(100);
    const expired: string[] = [];
    const item = (name: string, inMs: number): Expiring => ({
      deadlineMs: nowMs() + inMs,
      expire: () => void expired.push(name),
      faulted: () => {},
    });
    const long = item("long", 10 * 60_000);
    const sentinel = item("sentinel", 50);
    const slots = [set.add(long), set.add(sentinel)];
    setSystemTime(new Date(Date.now() + 3_600_000));
    try {
      await until(() => expired.includes("sentinel"), "the sentinel's expiry");
      expect(expired).toEqual(["sentinel"]);
    } finally {
      setSystemTime();
      set.delete(slots[0]!, long);
    }
  });
});
