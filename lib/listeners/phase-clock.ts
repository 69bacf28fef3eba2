/**
 * One deadline clock for a connection that waits for different things in turn (HTTP: the next
 * request, the rest of a head, an exchange). Moving the deadline is a field write; the single
 * timer is re-armed only when it would otherwise fire too late, so a request/response cycle
 * costs no setTimeout/clearTimeout pairs. When the deadline passes, `onExpire(phase)` runs once.
 */
export class PhaseClock<P extends string> {
  phase: P | null = null;
  private deadlineMs = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAtMs = 0;

  constructor(private readonly onExpire: (phase: P) => void) {}

  /** Waits for `phase` from now on, for at most `ms`. */
  set(phase: P, ms: number): void {
    this.phase = phase;
    this.deadlineMs = Date.now() + ms;
    if (this.timer === undefined || this.deadlineMs < this.timerAtMs) this.arm();
  }

  /** Waiting for nothing (another clock rules, e.g. a connect timeout). The timer may stay armed. */
  pause(): void {
    this.phase = null;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.phase = null;
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timerAtMs = this.deadlineMs;
    this.timer = setTimeout(() => this.fire(), Math.max(0, this.deadlineMs - Date.now()));
  }

  private fire(): void {
    this.timer = undefined;
    const phase = this.phase;
    if (phase === null) return;
    if (Date.now() < this.deadlineMs) return this.arm(); // the deadline moved on since arming
    this.phase = null;
    this.onExpire(phase);
  }
}
