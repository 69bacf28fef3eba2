/**
 * Timers shared by many items: one interval visits every item of a set, and runs only while the
 * set is non-empty. An idle tunnel, a connect in flight or a handshake then costs a set entry,
 * not a timer: a setTimeout/clearTimeout pair per connection measured ~3 % of the connection rate
 * (bench/RESULTS.md), and memory per idle tunnel is a benchmark target. Precision is the tick.
 *
 * A check that throws (a bug, lib/fault.ts) is dropped from its set and its item told (`faulted`):
 * each item closes its connection as a socket event's barrier does, so no connection is left
 * without the limit it was checked for.
 *
 * Deadlines (`deadlinesFor`): connect, handshake, HTTP phase and half-closed timeouts. Their set
 * is swept every tenth of the timeout (5 ms to 1 s), so a deadline fires up to 10 % late (at
 * most 1 s), never early.
 */
import { type FaultSite, reportFault } from "./fault.ts";
import { Slots } from "./slots.ts";
import { nowMs } from "./clock.ts";

/**
 * Inactivity limits (a tunnel's idle limit, an HTTP exchange's --response-timeout): checked
 * every limit / INACTIVITY_CHECKS, and passed once that many checks in a row saw no byte move,
 * so between 1 and 1.25 times the limit after the last byte; a moving byte costs nothing.
 */
export const INACTIVITY_CHECKS = 4;

/** What an inactivity limit keeps between its checks. */
export interface Inactivity {
  /** Bytes moved at the last check, and the checks in a row since then that saw none move. */
  movedSeenBytes: number;
  stillChecks: number;
}

/** The interval of an inactivity limit's checks. */
export function inactivityTickMs(limitMs: number): number {
  return Math.max(1, Math.floor(limitMs / INACTIVITY_CHECKS));
}

/** The count starts over, with `moved` bytes moved so far. */
export function startStallChecks(state: Inactivity, moved: number): void {
  state.movedSeenBytes = moved;
  state.stillChecks = 0;
}

/** One check, with `moved` bytes moved so far: true once INACTIVITY_CHECKS checks in a row saw none move. */
export function stalled(state: Inactivity, moved: number): boolean {
  if (moved !== state.movedSeenBytes) {
    startStallChecks(state, moved);
    return false;
  }
  return ++state.stillChecks >= INACTIVITY_CHECKS;
}

const TIMER: FaultSite = "timer";

/** The default for items with nothing of their own to close: the fault is reported. */
function reportOnly(_item: unknown, err: unknown): void {
  reportFault(err, TIMER);
}

/**
 * Items sit in Slots (lib/slots.ts): `add` returns the slot, which `delete` takes back.
 * `faulted(item, err)` runs after the item's visit threw and the item was dropped: it reports the
 * fault and closes what the item is a limit of.
 */
export class SweptSet<T> {
  private readonly items = new Slots<T>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly visitOne = (item: T, slot: number): void => {
    try {
      this.visit(item, this.now, this, slot);
    } catch (err) {
      // A bug in one item's check (lib/fault.ts): drop the item, so that it neither throws again
      // every tick nor keeps the other items from being checked, and let it close its connection.
      this.items.delete(slot, item);
      try {
        this.faulted(item, err);
      } catch (again) {
        reportFault(err, TIMER);
        reportFault(again, TIMER);
      }
    }
  };
  private now = 0;

  constructor(
    private readonly tickMs: number,
    private readonly visit: (item: T, now: number, set: SweptSet<T>, slot: number) => void,
    private readonly faulted: (item: T, err: unknown) => void = reportOnly,
  ) {}

  get size(): number {
    return this.items.size;
  }

  add(item: T): number {
    this.timer ??= setInterval(() => this.sweep(), this.tickMs);
    return this.items.add(item);
  }

  delete(slot: number, item: T): void {
    this.items.delete(slot, item);
  }

  private sweep(): void {
    // Stopped here rather than in delete: a set that empties and refills between connections
    // would otherwise create an interval per connection. An empty set costs one more tick.
    if (this.items.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    this.now = nowMs();
    this.items.forEach(this.visitOne);
  }
}

/** The SweptSet of `cache` for `tickMs`, created on first use (one per distinct limit value). */
export function sweptSetFor<T>(
  cache: Map<number, SweptSet<T>>,
  tickMs: number,
  visit: (item: T, now: number, set: SweptSet<T>, slot: number) => void,
  faulted?: (item: T, err: unknown) => void,
): SweptSet<T> {
  let set = cache.get(tickMs);
  if (!set) cache.set(tickMs, (set = new SweptSet(tickMs, visit, faulted)));
  return set;
}

export interface Expiring {
  /** nowMs() value from which the item is overdue. */
  readonly deadlineMs: number;
  /** Called once, from the sweep, when the deadline has passed and the item is still pending. */
  expire(): void;
  /**
   * `expire` (or the check before it) threw; the item is out of its set. Report the fault
   * (lib/fault.ts) and close the connection the deadline was for: `Conn.fault(err, "timer")`.
   */
  faulted(err: unknown): void;
}

const TICK_DIVISOR = 10;
const MIN_TICK_MS = 5;
const MAX_TICK_MS = 1000;

const sets = new Map<number, SweptSet<Expiring>>();

function visit(item: Expiring, now: number, set: SweptSet<Expiring>, slot: number): void {
  if (now < item.deadlineMs) return;
  set.delete(slot, item);
  item.expire();
}

const expiringFaulted = (item: Expiring, err: unknown): void => item.faulted(err);

/** The deadline set for a timeout: one per tick length (timeouts of 10 s and more share the 1 s one). */
export function deadlinesFor(timeoutMs: number): SweptSet<Expiring> {
  const tick = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, Math.floor(timeoutMs / TICK_DIVISOR)));
  return sweptSetFor(sets, tick, visit, expiringFaulted);
}

/**
 * A deadline that moves with activity: `over` runs once `idleMs` pass without `touch()`, or
 * `maxMs` in all, up to a tenth late (the tick of its shared set); `stop()` cancels it. Behind
 * the closes that wait on a peer: lingering (lib/runtime/linger.ts) and the flush limit
 * (lib/runtime/flush.ts).
 */
export class IdleDeadline implements Expiring {
  deadlineMs: number;
  private readonly startedMs: number;
  private lastMs: number;
  private slot: number;
  private stopped = false;

  constructor(
    private readonly idleMs: number,
    private readonly maxMs: number,
    private readonly over: () => void,
  ) {
    this.startedMs = this.lastMs = nowMs();
    this.deadlineMs = this.startedMs + Math.min(idleMs, maxMs);
    this.slot = deadlinesFor(idleMs).add(this);
  }

  /** Activity: the idle limit starts again. */
  touch(): void {
    this.lastMs = nowMs();
  }

  expire(): void {
    if (this.stopped) return;
    const now = nowMs();
    const left = Math.min(this.lastMs + this.idleMs, this.startedMs + this.maxMs) - now;
    if (left > 0) {
      this.deadlineMs = now + left;
      this.slot = deadlinesFor(this.idleMs).add(this);
      return;
    }
    this.stopped = true; // the sweep has taken it out of its set
    this.over();
  }

  faulted(err: unknown): void {
    reportFault(err, TIMER);
    this.stopped = true;
    this.over();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    deadlinesFor(this.idleMs).delete(this.slot, this);
  }
}
