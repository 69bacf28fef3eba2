/**
 * Logging on consola's core (no fancy reporter: the default one costs ~20 ms of start-up on its
 * first touch of process.stdout, see RUNTIME-NOTES). Lines go to the runtime's `writeStdout`
 * (lib/runtime/types.ts), which under Bun is a FileSink on fd 1: creating process.stdout alone
 * cost ~8 ms of start-up (bench/RESULTS.md). Two formats:
 * - json: one JSON object per line, `{"time","level","msg",...fields}` (for log pipelines);
 * - pretty: `HH:MM:SS level msg key=value ...` (for humans at a TTY).
 * Throttling is off: one line per finished connection must never be merged away.
 */
import { createConsola, type ConsolaReporter, type LogObject } from "consola/core";

export type LogLevelName = "silent" | "error" | "warn" | "info" | "debug" | "trace";
export type Fields = Record<string, unknown>;

export interface Logger {
  error(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  readonly level: number;
}

const LEVELS: Record<LogLevelName, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

type Write = (line: string) => void;

function jsonReporter(writeOut: Write): ConsolaReporter {
  return {
    log(obj: LogObject) {
      const [msg, fields] = obj.args as [string, Fields | undefined];
      const record: Fields = { time: obj.date.toISOString(), level: obj.type, msg };
      if (fields) Object.assign(record, fields);
      writeOut(JSON.stringify(record) + "\n");
    },
  };
}

function prettyValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) || value === "" ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

function prettyReporter(writeOut: Write): ConsolaReporter {
  return {
    log(obj: LogObject) {
      const [msg, fields] = obj.args as [string, Fields | undefined];
      const time = obj.date.toISOString().slice(11, 23);
      let line = `${time} ${obj.type.padEnd(5)} ${msg}`;
      if (fields) for (const [k, v] of Object.entries(fields)) line += ` ${k}=${prettyValue(v)}`;
      writeOut(line + "\n");
    },
  };
}

/** `write` receives whole lines, each ending in a newline. */
export function createLogger(level: LogLevelName, format: "json" | "pretty", write: Write): Logger {
  const consola = createConsola({
    level: LEVELS[level],
    throttle: 0,
    reporters: [format === "json" ? jsonReporter(write) : prettyReporter(write)],
  });
  const numeric = LEVELS[level];
  return {
    level: numeric,
    error: (msg, fields) => consola.error(msg, fields),
    warn: (msg, fields) => consola.warn(msg, fields),
    info: (msg, fields) => consola.info(msg, fields),
    debug: (msg, fields) => {
      if (numeric >= LEVELS.debug) consola.debug(msg, fields);
    },
  };
}

