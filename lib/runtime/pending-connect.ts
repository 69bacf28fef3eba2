/**
 * One outgoing connect in flight, for either runtime adapter. It settles once: when the
 * connection opens, on an error, or at its deadline (an entry in a shared deadline set,
 * lib/sweep.ts, not a timer per connect). Neither runtime cancels a connect in a way we can
 * rely on, so a connection that opens after the deadline is destroyed at once: nobody wants it.
 */
import { ProxyError, asProxyError } from "../errors.ts";
import { reportFault } from "../fault.ts";
import { type Expiring, type SweptSet, deadlinesFor } from "../sweep.ts";
import type { Conn, ConnectOptions } from "./types.ts";
import { nowMs } from "../clock.ts";

export class PendingConnect implements Expiring {
  readonly deadline: number;
  private settled = false;
  private readonly deadlines: SweptSet<Expiring>;
  private readonly slot: number;

  /** `onTimeout` runs at the deadline, before `done` gets the connectTimeout error. */
  constructor(
    private readonly options: ConnectOptions,
    private readonly done: (result: Conn | ProxyError) => void,
    private readonly onTimeout?: () => void,
  ) {
    this.deadline = nowMs() + options.timeoutMs;
    this.deadlines = deadlinesFor(options.timeoutMs);
    this.slot = this.deadlines.add(this);
  }

  opened(conn: Conn): void {
    if (this.settled) return conn.destroy();
    this.settle();
    this.done(conn);
  }

  failed(err: unknown): void {
    if (this.settled) return;
    this.settle();
    this.done(asProxyError(err));
  }

  /** From the sweep, which has already taken this out of its set. */
  expire(): void {
    if (this.settled) return;
    this.settled = true;
    this.onTimeout?.();
    const { hostname, port, timeoutMs } = this.options;
    this.done(new ProxyError("connectTimeout", `no answer from ${hostname}:${port} in ${timeoutMs} ms`));
  }

  /**
   * `expire` threw (lib/fault.ts). It settles before it calls out, so the throw came from the
   * owner's callback, and the owner (lib/tunnel.ts, the HTTP session) closes its own connection
   * on a fault there: what is left here is to report it.
   */
  faulted(err: unknown): void {
    this.settled = true;
    reportFault(err, "timer");
  }

  private settle(): void {
    this.settled = true;
    this.deadlines.delete(this.slot, this);
  }
}
