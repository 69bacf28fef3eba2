/**
 * Connect deadlines without a timer per connect. A short connection is mostly syscalls, and a
 * `setTimeout` + `clearTimeout` pair per dial measured ~3 % of the reverse-TCP connection rate
 * (bench/RESULTS.md): pending connects sit in a set that one interval sweeps every tenth of the
 * timeout. A deadline therefore fires between its time and 10 % later (at most 1 s), never early.
 */
import { type SweptSet, sweptSetFor } from "../sweep.ts";

export interface Expiring {
  /** Date.now() value from which the item is overdue. */
  readonly deadline: number;
  /** Called once, from the sweep, when the deadline has passed and the item is still pending. */
  expire(): void;
}

const TICK_DIVISOR = 10;
const MIN_TICK_MS = 5;
const MAX_TICK_MS = 1000;

const sets = new Map<number, SweptSet<Expiring>>();

function visit(item: Expiring, now: number, set: SweptSet<Expiring>): void {
  if (now < item.deadline) return;
  set.delete(item);
  item.expire();
}

/** The deadline set for a timeout: one per tick length (in practice one: the connect timeout). */
export function deadlinesFor(timeoutMs: number): SweptSet<Expiring> {
  const tick = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.floor(timeoutMs / TICK_DIVISOR)));
  return sweptSetFor(sets, tick, visit);
}
