/**
 * Logging on consola's core (no fancy reporter: the default one costs ~20 ms of start-up on its
 * first touch of process.stdout, see RUNTIME-NOTES). Lines go to the runtime's `writeStdout`
 * (lib/runtime/types.ts), which under Bun is a FileSink on fd 1 (lib/runtime/bun-stdout.ts):
 * creating process.stdout alone cost ~8 ms of start-up (bench/RESULTS.md). Two formats:
 * - json: one JSON object per line, `{"time","level","msg",...fields}` (for log pipelines);
 * - pretty: `HH:MM:SS level msg key=value ...` (for humans at a TTY).
 * consola's throttling is off: one line per finished connection must never be merged away
 * (ThrottledLine, below, is for the few events that come in floods and name their count).
 */
import { createConsola, type ConsolaReporter, type LogObject } from "consola/core";
import { nowMs } from "./clock.ts";
import { escapeUnsafe } from "./text.ts";

export type LogLevelName = "silent" | "error" | "warn" | "info" | "debug" | "trace";
export type Fields = Record<string, unknown>;

export interface Logger {
  error(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  readonly level: number;
  /** Lines stdout did not take (see createLogger). */
  readonly droppedLines: number;
}

export const LEVELS: Readonly<Record<LogLevelName, number>> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

/**
 * An event logged at most once per interval: `hit` counts one and says how many to name in a
 * line now (this one and those kept quiet since the last line), or 0 while the interval runs.
 */
export class Throttle {
  private lastMs = Number.NEGATIVE_INFINITY;
  private quiet = 0;
  constructor(private readonly intervalMs: number) {}

  hit(nowMs: number): number {
    if (nowMs - this.lastMs < this.intervalMs) {
      this.quiet++;
      return 0;
    }
    this.lastMs = nowMs;
    const count = this.quiet + 1;
    this.quiet = 0;
    return count;
  }

  /** How long the interval of the last line still runs (0 once it has ended). */
  msLeft(nowMs: number): number {
    return Math.max(0, this.lastMs + this.intervalMs - nowMs);
  }

  /** At an interval's end: the hits it kept quiet (0 if none); if any, a new interval starts now. */
  flush(nowMs: number): number {
    const count = this.quiet;
    if (count > 0) this.lastMs = nowMs;
    this.quiet = 0;
    return count;
  }
}

/** Runs `fn` once after `ms` (setTimeout, not keeping the process alive); tests pass their own. */
export type Schedule = (fn: () => void, ms: number) => void;

const scheduleUnref: Schedule = (fn, ms) => {
  const timer = setTimeout(fn, ms);
  (timer as { unref?: () => void }).unref?.(); // never what keeps the process alive
};

/**
 * A line written at most once per interval, for an event that can come in floods (the
 * connection cap's refusals): `hit()` writes the first at once and counts the rest, and the
 * count kept quiet in an interval is written at its end, not left for the next event (which may
 * never come). `write` gets how many events the line stands for. One timer runs while events
 * come: it follows the interval of the last line written, whichever wrote it (a hit just after
 * an interval's end writes before a late timer gets to run).
 */
export class ThrottledLine {
  private readonly throttle: Throttle;
  private timerPending = false;

  constructor(
    intervalMs: number,
    private readonly write: (count: number) => void,
    private readonly clock: () => number = nowMs,
    private readonly schedule: Schedule = scheduleUnref,
  ) {
    this.throttle = new Throttle(intervalMs);
  }

  hit(): void {
    const now = this.clock();
    const count = this.throttle.hit(now);
    if (count > 0) this.write(count);
    this.arm(now);
  }

  private arm(now: number): void {
    if (this.timerPending) return;
    this.timerPending = true;
    // At least 1 ms: a timer that fires a fraction early (Bun truncates fractional delays) must
    // not be re-armed for ever at the same instant.
    this.schedule(() => this.intervalEnded(), Math.max(1, this.throttle.msLeft(now)));
  }

  private intervalEnded(): void {
    this.timerPending = false;
    const now = this.clock();
    // A hit wrote a line since this timer was set: its interval ends later.
    if (this.throttle.msLeft(now) > 0) return this.arm(now);
    const quiet = this.throttle.flush(now);
    if (quiet === 0) return; // the flood is over: no timer until the next event
    this.write(quiet);
    this.arm(now);
  }
}

/** Takes one whole line (ending in a newline); false when it was not taken (see Runtime.writeStdout). */
type Write = (line: string) => boolean;
type Format = (type: string, date: Date, msg: string, fields: Fields | undefined) => string;

const formatJson: Format = (type, date, msg, fields) => {
  const record: Fields = { time: date.toISOString(), level: type, msg };
  if (fields) Object.assign(record, fields);
  return escapeUnsafe(JSON.stringify(record)) + "\n";
};

/** A value as it stands in a pretty line: bare when plain, else JSON-quoted (so every control is escaped). */
function prettyValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=\u0000-\u001f]/.test(value) || value === "" ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

const formatPretty: Format = (type, date, msg, fields) => {
  let line = `${date.toISOString().slice(11, 23)} ${type.padEnd(5)} ${msg}`;
  if (fields) for (const [k, v] of Object.entries(fields)) line += ` ${k}=${prettyValue(v)}`;
  return escapeUnsafe(line) + "\n";
};

/**
 * `write` may refuse a line (stdout gone, or too much already waiting for its reader): the line
 * is counted in `droppedLines`, and the next line that gets through is preceded by a warning
 * that says how many were dropped since the last one did.
 */
export function createLogger(level: LogLevelName, format: "json" | "pretty", write: Write): Logger {
  const fmt = format === "json" ? formatJson : formatPretty;
  let dropped = 0;
  let droppedSinceNotice = 0;
  const out = (line: string): void => {
    if (droppedSinceNotice > 0) {
      const notice = fmt("warn", new Date(), "log lines dropped", { lines: droppedSinceNotice, reason: "stdout is not read fast enough, or is closed" });
      if (!write(notice)) {
        dropped++;
        droppedSinceNotice++;
        return;
      }
      droppedSinceNotice = 0;
    }
    if (!write(line)) {
      dropped++;
      droppedSinceNotice++;
    }
  };
  const reporter: ConsolaReporter = {
    log(obj: LogObject) {
      const [msg, fields] = obj.args as [string, Fields | undefined];
      out(fmt(obj.type, obj.date, msg, fields));
    },
  };
  const consola = createConsola({ level: LEVELS[level], throttle: 0, reporters: [reporter] });
  const numeric = LEVELS[level];
  return {
    level: numeric,
    get droppedLines() {
      return dropped;
    },
    error: (msg, fields) => consola.error(msg, fields),
    warn: (msg, fields) => consola.warn(msg, fields),
    info: (msg, fields) => consola.info(msg, fields),
    debug: (msg, fields) => {
      if (numeric >= LEVELS.debug) consola.debug(msg, fields);
    },
  };
}
