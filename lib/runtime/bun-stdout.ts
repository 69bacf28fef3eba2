/**
 * The Bun adapter's log sink (lib/runtime/bun.ts): log lines to fd 1 without blocking the proxy.
 */
import { LOG_QUEUE_MAX_BYTES } from "../limits.ts";
import { settledWithin } from "./settled.ts";
import { nowMs } from "../clock.ts";

/**
 * Log lines through a FileSink on fd 1 rather than process.stdout, whose first touch loads
 * Bun's node:stream machinery (~8 ms of a compiled start, bench/RESULTS.md). Same behaviour
 * otherwise: a pipe that is full queues in order without blocking. Measured FileSink contract
 * (Bun 1.4.4): once the pipe is full, write() and flush() return promises, which all resolve
 * when the sink has drained; a write error (EPIPE: the reader is gone) is thrown, or rejects
 * the pending promises, or, met by a flush of buffered lines, is reported by nothing at once
 * (that flush returns 0, as one with nothing to write does); the sink then closes itself, and
 * from the next flush on flush() returns `undefined` and write() `true` (not a byte count).
 * Each way logging stops instead of the process (process.stdout would raise it as an uncaught
 * error), and the lines that follow are dropped and counted (lib/log.ts); those written in the
 * turn or two before the sink said so are lost uncounted.
 *
 * Lines are buffered in the sink and flushed once per event-loop turn (setImmediate): one
 * write(2) for all the lines a turn produced rather than one per line (paired, a line per
 * connection at info level: −0.6 to −0.9 µs of CPU per connection, bench/RESULTS.md).
 */
let stdoutSink: ReturnType<typeof Bun.stdout.writer> | undefined;
let stdoutBroken = false;
/**
 * What was written since the sink last had nothing pending, in UTF-16 units (bytes for the
 * ASCII of almost every log line; fewer than the bytes where a field value is not ASCII).
 */
let stdoutQueuedBytes = 0;
/** Bumped per pending write: only the newest promise's settling proves the sink drained. */
let stdoutPendingSeq = 0;
let stdoutNewest: Promise<unknown> = Promise.resolve();

function stdoutPending(p: Promise<number>): void {
  const seq = ++stdoutPendingSeq;
  stdoutNewest = p;
  p.then(
    () => {
      if (seq === stdoutPendingSeq) stdoutQueuedBytes = 0;
    },
    () => (stdoutBroken = true),
  );
}

let stdoutFlushScheduled = false;

export function writeStdout(line: string): boolean {
  if (stdoutBroken || stdoutQueuedBytes > LOG_QUEUE_MAX_BYTES) return false;
  try {
    stdoutSink ??= Bun.stdout.writer();
    const written = stdoutSink.write(line);
    if (typeof written === "boolean") {
      stdoutBroken = true; // the sink closed itself after an error: the line went nowhere
      return false;
    }
    stdoutQueuedBytes += line.length;
    if (written instanceof Promise) stdoutPending(written);
    if (!stdoutFlushScheduled) {
      stdoutFlushScheduled = true;
      setImmediate(flushStdoutNow);
    }
    return true;
  } catch {
    stdoutBroken = true;
    return false;
  }
}

function flushStdoutNow(): void {
  stdoutFlushScheduled = false;
  if (!stdoutSink || stdoutBroken) return;
  try {
    const flushed = stdoutSink.flush();
    if (flushed instanceof Promise) stdoutPending(flushed);
    else if (typeof flushed === "number") stdoutQueuedBytes = 0;
    else stdoutBroken = true; // `undefined`: the sink closed itself after an error
  } catch {
    stdoutBroken = true;
  }
}

export async function flushStdout(timeoutMs: number): Promise<void> {
  if (stdoutFlushScheduled) flushStdoutNow();
  const deadlineMs = nowMs() + timeoutMs;
  while (stdoutQueuedBytes > 0 && !stdoutBroken && nowMs() < deadlineMs) await settledWithin(stdoutNewest, deadlineMs - nowMs());
}
