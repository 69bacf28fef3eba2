/**
 * lib/log.ts: the two line formats, and what happens when stdout refuses lines (closed, or too
 * far behind): every refused line is counted, and the next line that gets through is preceded by
 * one warning naming how many were dropped. Throttle: an event logged once per interval.
 */
import { describe, expect, test } from "bun:test";
import { Throttle, ThrottledLine, createLogger } from "../lib/log.ts";

/** A stdout that takes lines while `open` is true. */
function fakeStdout() {
  const lines: string[] = [];
  const state = { open: true, lines, write: (line: string) => (state.open ? (lines.push(line), true) : false) };
  return state;
}

describe("createLogger", () => {
  test("json: one object per line, time, level, msg and the fields", () => {
    const out = fakeStdout();
    const log = createLogger("info", "json", out.write);
    log.info("connection", { id: 7, target: "127.0.0.1:80" });
    log.debug("not at info");
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]!.endsWith("\n")).toBe(true);
    const rec = JSON.parse(out.lines[0]!);
    expect(rec).toMatchObject({ level: "info", msg: "connection", id: 7, target: "127.0.0.1:80" });
    expect(Number.isNaN(Date.parse(rec.time))).toBe(false);
  });

  test("pretty: time, level, msg, key=value with strings quoted only when needed", () => {
    const out = fakeStdout();
    createLogger("info", "pretty", out.write).warn("connection", { a: "plain", b: "has space", c: 3 });
    expect(out.lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} warn  connection a=plain b="has space" c=3\n$/);
  });

  test("control characters a client put in a value reach neither format raw: C0, DEL, C1 (NEL, CSI), line separators", () => {
    const hostile = "a\u001b[31mb\u0085FAKE line\u009b31mc\u007fd\u2028e\tf";
    for (const format of ["json", "pretty"] as const) {
      const out = fakeStdout();
      createLogger("info", format, out.write).warn("connection", { detail: hostile });
      const line = out.lines[0]!;
      expect([format, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/.test(line.slice(0, -1))]).toEqual([format, false]);
      expect(line.indexOf("\n")).toBe(line.length - 1); // one line
      if (format === "json") expect(JSON.parse(line).detail).toBe(hostile); // escaped, not lost
    }
  });

  test("refused lines are counted; the next line through is preceded by one notice with the count", () => {
    const out = fakeStdout();
    const log = createLogger("info", "json", out.write);
    log.info("first");
    out.open = false;
    for (let i = 0; i < 5; i++) log.info("lost", { i });
    expect(log.droppedLines).toBe(5);
    out.open = true;
    log.info("back");
    log.info("after");
    expect(out.lines.map((l) => JSON.parse(l).msg)).toEqual(["first", "log lines dropped", "back", "after"]);
    expect(JSON.parse(out.lines[1]!)).toMatchObject({ level: "warn", lines: 5 });
    expect(log.droppedLines).toBe(5);

    // A second episode reports only its own lines; the total keeps counting.
    out.open = false;
    log.error("lost again");
    out.open = true;
    log.info("back again");
    expect(JSON.parse(out.lines[4]!)).toMatchObject({ msg: "log lines dropped", lines: 1 });
    expect(JSON.parse(out.lines[5]!).msg).toBe("back again");
    expect(log.droppedLines).toBe(6);
  });

  test("while the notice is refused, the line after it is not tried (it would come first) and counts as dropped", () => {
    let budget = 0;
    const lines: string[] = [];
    const log = createLogger("info", "json", (line) => (budget-- > 0 ? (lines.push(line), true) : false));
    log.info("a"); // refused
    log.info("b"); // its notice is refused, so "b" is not tried
    expect(log.droppedLines).toBe(2);
    budget = 2;
    log.info("c");
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(["log lines dropped", "c"]);
    expect(JSON.parse(lines[0]!).lines).toBe(2);
  });
});

describe("Throttle (the connection cap's warning: lib/app.ts, CAP_WARN_INTERVAL_MS)", () => {
  test("the first event is reported at once; the next within the interval are counted and named by the first one after it", () => {
    const t = new Throttle(10_000);
    expect(t.hit(1_000)).toBe(1);
    expect(t.hit(1_001)).toBe(0);
    expect(t.hit(5_000)).toBe(0);
    expect(t.hit(10_999)).toBe(0); // 9 999 ms after the line
    expect(t.hit(11_000)).toBe(4); // this one and the three kept quiet
    expect(t.hit(11_000)).toBe(0);
    expect(t.hit(30_000)).toBe(2);
  });

  test("a clock that starts at 0 (performance.now) still reports its first event", () => {
    expect(new Throttle(10_000).hit(0)).toBe(1);
  });

  test("flush at an interval's end: the hits it kept quiet, and a new interval from then on", () => {
    const t = new Throttle(10_000);
    expect(t.hit(0)).toBe(1);
    expect(t.hit(1)).toBe(0);
    expect(t.hit(2)).toBe(0);
    expect(t.flush(10_000)).toBe(2);
    expect(t.hit(15_000)).toBe(0); // inside the interval the flush began
    expect(t.flush(20_000)).toBe(1);
    expect(t.flush(30_000)).toBe(0); // nothing kept quiet: nothing to write, no new interval
    expect(t.hit(30_001)).toBe(1);
  });

  test("msLeft: what is left of the last line's interval", () => {
    const t = new Throttle(10_000);
    expect(t.msLeft(0)).toBe(0); // no line yet
    t.hit(1_000);
    expect(t.msLeft(1_000)).toBe(10_000);
    expect(t.msLeft(8_000)).toBe(3_000);
    expect(t.msLeft(11_000)).toBe(0);
    expect(t.msLeft(50_000)).toBe(0);
  });
});

/** A clock and a timer queue the test moves by hand: ThrottledLine's order of events, without waiting. */
function handTimers() {
  let now = 0;
  let timers: Array<{ at: number; fn: () => void }> = [];
  return {
    clock: () => now,
    schedule: (fn: () => void, ms: number) => void timers.push({ at: now + ms, fn }),
    /** Moves the clock to `t` without running timers (a timer that is late). */
    at(t: number) {
      now = t;
    },
    /** Moves the clock to `t`, running each timer due by then at its own time; more than 100 is a runaway, and fails. */
    runTo(t: number) {
      for (let i = 0; ; i++) {
        const due = timers.filter((x) => x.at <= t).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        if (i >= 100) throw new Error(`more than 100 timers ran before ${t}: a timer re-arms itself without end`);
        timers = timers.filter((x) => x !== due);
        now = Math.max(now, due.at);
        due.fn();
      }
      now = t;
    },
    pending: () => timers.length,
  };
}

describe("ThrottledLine with a hand-moved clock", () => {
  test("a hit just after an interval's end writes before a late timer runs: the timer then follows that line's interval, so no second line comes a moment later and what follows is written at its end", () => {
    const clock = handTimers();
    const lines: Array<[number, number]> = [];
    const line = new ThrottledLine(10_000, (count) => lines.push([clock.clock(), count]), clock.clock, clock.schedule);
    line.hit(); // 0: written at once
    clock.at(5_000);
    line.hit(); // kept quiet
    clock.at(10_002); // the timer due at 10 000 has not run yet
    line.hit(); // the interval is over: written, naming the quiet one
    clock.at(10_002.5);
    line.hit(); // inside the new interval
    clock.runTo(10_003); // the late timer: the interval of the line at 10 002 still runs
    expect(lines).toEqual([
      [0, 1],
      [10_002, 2],
    ]);
    clock.at(10_006);
    line.hit();
    line.hit();
    clock.runTo(20_002); // that interval's end: the three kept quiet since 10 002
    expect(lines).toEqual([
      [0, 1],
      [10_002, 2],
      [20_002, 3],
    ]);
    clock.runTo(40_000); // nothing more came: no line, and no timer left
    expect(lines.length).toBe(3);
    expect(clock.pending()).toBe(0);
    clock.at(40_001);
    line.hit();
    expect(lines[3]).toEqual([40_001, 1]);
  });

  test("a timer that fires a fraction of a millisecond early is re-armed for at least 1 ms, not again and again at the same instant", () => {
    const clock = handTimers();
    const lines: Array<[number, number]> = [];
    // A scheduler that runs every timer 0.5 ms early: a re-arm for what is left (0.5 ms) would come back at once, for ever.
    const early = (fn: () => void, ms: number) => clock.schedule(fn, ms - 0.5);
    const line = new ThrottledLine(10_000, (count) => lines.push([clock.clock(), count]), clock.clock, early);
    line.hit();
    clock.at(1);
    line.hit();
    clock.runTo(30_000);
    expect(lines.reduce((sum, [, count]) => sum + count, 0)).toBe(2);
    expect(lines[1]![0]).toBeGreaterThanOrEqual(10_000);
    expect(clock.pending()).toBe(0);
  });

  test("a flood writes one line per interval, each naming the events since the one before", () => {
    const clock = handTimers();
    const lines: Array<[number, number]> = [];
    const line = new ThrottledLine(10_000, (count) => lines.push([clock.clock(), count]), clock.clock, clock.schedule);
    for (let t = 0; t < 35_000; t += 100) {
      clock.runTo(t);
      line.hit();
    }
    clock.runTo(60_000);
    expect(lines.map(([t]) => t)).toEqual([0, 10_000, 20_000, 30_000, 40_000]);
    expect(lines.reduce((sum, [, count]) => sum + count, 0)).toBe(350); // each hit named once
    expect(clock.pending()).toBe(0);
  });
});

describe("ThrottledLine (the cap warning's timer)", () => {
  /** Resolves once `cond` holds, polling every 5 ms for at most 5 s. */
  async function until(cond: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 1_000 && !cond(); i++) await Bun.sleep(5);
    if (!cond()) throw new Error(`timed out waiting for ${what}`);
  }

  test("a burst writes one line at once and one with the rest at the interval's end, without another event to bring it out", async () => {
    const lines: number[] = [];
    const line = new ThrottledLine(30, (count) => lines.push(count));
    for (let i = 0; i < 5; i++) line.hit();
    expect(lines[0]).toBe(1);
    await until(() => lines.length >= 2, "the trailing line");
    expect(lines).toEqual([1, 4]);
    line.hit();
    await until(() => lines.length >= 3, "the next line");
    // Each event is named exactly once, whichever line it came out in.
    expect(lines.reduce((a, b) => a + b, 0)).toBe(6);
  });
});
