/**
 * One deadline clock for a connection that waits for different things in turn (HTTP: the next
 * request, the rest of a head, an exchange). Moving the deadline is a field write, and there is
 * no timer of its own: the clock sits in the shared deadline set of its current wait
 * (lib/sweep.ts, checked every tenth of the timeout), so a connection and each
 * request/response cycle cost no setTimeout/clearTimeout. When the deadline passes,
 * `onExpire(phase)` runs once; like every deadline here it fires up to 10 % late, never early.
 */
import { type Expiring, type SweptSet, deadlinesFor } from "../sweep.ts";
import { nowMs } from "../clock.ts";

export class PhaseClock<P extends string> implements Expiring {
  phase: P | null = null;
  deadlineMs = 0;
  /** The deadline set the clock is in, and the timeout that set is swept for. */
  private set_: SweptSet<Expiring> | null = null;
  private slot = -1;
  private setForMs = 0;

  /** `onFault(err)`: the check or `onExpire` threw (lib/fault.ts); report it and close the connection. */
  constructor(
    private readonly onExpire: (phase: P) => void,
    private readonly onFault: (err: unknown) => void,
  ) {}

  /** Waits for `phase` from now on, for at most `ms`. */
  set(phase: P, ms: number): void {
    this.phase = phase;
    this.deadlineMs = nowMs() + ms;
    // A set swept for a longer timeout would check this one too rarely: move to ms's own set.
    // Timeouts of 10 s and more share one set (its tick is capped), so usually it stays.
    if (this.set_ === null || ms < this.setForMs) {
      const set = deadlinesFor(ms);
      this.setForMs = ms;
      if (set === this.set_) return;
      this.set_?.delete(this.slot, this);
      this.set_ = set;
      this.slot = set.add(this);
    }
  }

  /** Waiting for nothing (another clock rules, e.g. a connect timeout). */
  pause(): void {
    this.phase = null;
  }

  stop(): void {
    this.set_?.delete(this.slot, this);
    this.set_ = null;
    this.phase = null;
  }

  /** From the sweep (which has already taken the clock out of its set). */
  expire(): void {
    this.set_ = null;
    const phase = this.phase;
    if (phase === null) return;
    this.phase = null;
    this.onExpire(phase);
  }

  faulted(err: unknown): void {
    this.set_ = null;
    this.phase = null;
    this.onFault(err);
  }
}
