/**
 * Timers shared by many items: one interval visits every item of a set, and runs only while the
 * set is non-empty. An idle tunnel or a connect in flight then costs a set entry, not a timer
 * (a timer per item measured a few % of the connection rate, and memory per idle tunnel is a
 * benchmark target: bench/RESULTS.md). Precision is the tick, which callers pick.
 */
export class SweptSet<T> {
  private readonly items = new Set<T>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly tickMs: number,
    private readonly visit: (item: T, now: number, set: SweptSet<T>) => void,
  ) {}

  add(item: T): void {
    this.items.add(item);
    this.timer ??= setInterval(() => this.sweep(), this.tickMs);
  }

  delete(item: T): void {
    this.items.delete(item);
    if (this.items.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private sweep(): void {
    const now = Date.now();
    // Deleting the visited item (or any other) while iterating a Set is safe in JS.
    for (const item of this.items) this.visit(item, now, this);
  }
}

/** The SweptSet of `cache` for `tickMs`, created on first use (one per distinct limit value). */
export function sweptSetFor<T>(cache: Map<number, SweptSet<T>>, tickMs: number, visit: (item: T, now: number, set: SweptSet<T>) => void): SweptSet<T> {
  let set = cache.get(tickMs);
  if (!set) cache.set(tickMs, (set = new SweptSet(tickMs, visit)));
  return set;
}
