/**
 * One outgoing connect in flight, for either runtime adapter. It settles once: when the
 * connection opens, on an error, or at its deadline (an entry in a shared deadline set,
 * lib/sweep.ts, not a timer per connect). Deno cancels a connect at its deadline (the adapter's
 * `onTimeout`); Bun cannot, so a connection that opens after the deadline is destroyed at once:
 * nobody wants it. Until the runtime reports such a connect (opened, failed), it is *abandoned*:
 * it holds a descriptor outside the connection cap, and abandoned connects have a budget of
 * their own (lib/limits.ts ABANDONED_CONNECTS_MAX): when it is spent, `start` refuses a new dial.
 */
import { ProxyError, asProxyError } from "../errors.ts";
import { hostPort } from "../address.ts";
import { reportFault } from "../fault.ts";
import { ABANDONED_CONNECT_FORGET_MS, ABANDONED_CONNECTS_MAX } from "../limits.ts";
import { type Expiring, type SweptSet, deadlinesFor } from "../sweep.ts";
import type { Conn, ConnectOptions } from "./types.ts";
import { nowMs } from "../clock.ts";

let budget = ABANDONED_CONNECTS_MAX;
let abandoned = 0;

/** Set with the connection cap (lib/app.ts), from the fd limit. */
export function setAbandonedConnectBudget(connects: number): void {
  budget = Math.max(0, Math.floor(connects));
}

/** The budget of abandoned connects, shared out among the listeners (lib/app.ts). */
export function abandonedConnectBudget(): number {
  return budget;
}

/** Connects past their deadline that the runtime has not reported yet (/metrics sidecar_abandoned_connects). */
export function abandonedConnects(): number {
  return abandoned;
}

type State = "connecting" | "abandoned" | "done";

export class PendingConnect implements Expiring {
  /**
   * A PendingConnect for the adapter to start its dial with, or null when the abandoned
   * connects' budget is spent: `done` then gets a limitExceeded error (never before `start`
   * returns) and nothing is dialled.
   */
  static start(options: ConnectOptions, done: (result: Conn | ProxyError) => void, onTimeout?: () => void): PendingConnect | null {
    // The owner's share first: one listener's clients cannot spend what every listener shares.
    const owner = options.owner;
    const mine = owner !== undefined && owner.abandonedConnects >= owner.abandonedShare;
    if (!mine && abandoned < budget) return new PendingConnect(options, done, onTimeout);
    const held = mine ? `${owner!.abandonedConnects} earlier connects that timed out are still held open by the kernel (this listener's share)` : `${abandoned} earlier connects that timed out are still held open by the kernel`;
    const refusal = new ProxyError("limitExceeded", `not dialling ${hostPort(options.hostname, options.port)}: ${held}`);
    queueMicrotask(() => done(refusal));
    return null;
  }

  deadlineMs: number;
  private state: State = "connecting";
  private deadlines: SweptSet<Expiring>;
  private slot: number;

  /** `onTimeout` runs at the deadline, before `done` gets the connectTimeout error. */
  private constructor(
    private readonly options: ConnectOptions,
    private readonly done: (result: Conn | ProxyError) => void,
    private readonly onTimeout?: () => void,
  ) {
    this.deadlineMs = nowMs() + options.timeoutMs;
    this.deadlines = deadlinesFor(options.timeoutMs);
    this.slot = this.deadlines.add(this);
  }

  opened(conn: Conn): void {
    if (this.state !== "connecting") {
      this.forget();
      return conn.destroy();
    }
    this.settle();
    this.done(conn);
  }

  failed(err: unknown): void {
    if (this.state !== "connecting") return this.forget();
    this.settle();
    // A runtime's connect error without an OS code (Bun: "Failed to connect" for some
    // destinations) is the destination's failure, not a bug of ours: 502 / 0x01, not 500.
    const e = asProxyError(err);
    this.done(e.kind === "internal" ? new ProxyError("connectFailed", `${hostPort(this.options.hostname, this.options.port)}: ${e.message}`, { cause: err }) : e);
  }

  /**
   * From the sweep, which has already taken this out of its set: the connect deadline (the
   * connect is abandoned, and counted until the runtime reports it), or, for an abandoned one,
   * ABANDONED_CONNECT_FORGET_MS later (no longer counted).
   */
  expire(): void {
    if (this.state === "abandoned") {
      this.state = "done";
      this.release();
      return;
    }
    if (this.state !== "connecting") return;
    this.state = "abandoned";
    abandoned++;
    if (this.options.owner) this.options.owner.abandonedConnects++;
    this.onTimeout?.();
    const { hostname, port, timeoutMs } = this.options;
    this.done(new ProxyError("connectTimeout", `${hostPort(hostname, port)} not connected within ${timeoutMs} ms`));
    this.watchAbandoned();
  }

  /**
   * `expire` threw (lib/fault.ts). It settles before it calls out, so the throw came from the
   * owner's callback, and the owner (lib/tunnel.ts, the HTTP session) closes its own connection
   * on a fault there: what is left here is to report it, and to keep watching the abandoned
   * connect (the throw came before `watchAbandoned`).
   */
  faulted(err: unknown): void {
    if (this.state === "connecting") this.state = "done";
    if (this.state === "abandoned") this.watchAbandoned();
    reportFault(err, "timer");
  }

  /** Into the deadline set that forgets an abandoned connect the runtime never reports. */
  private watchAbandoned(): void {
    this.deadlineMs = nowMs() + ABANDONED_CONNECT_FORGET_MS;
    this.deadlines = deadlinesFor(ABANDONED_CONNECT_FORGET_MS);
    this.slot = this.deadlines.add(this);
  }

  private settle(): void {
    this.state = "done";
    this.deadlines.delete(this.slot, this);
  }

  /** The runtime has reported an abandoned connect: its descriptor is gone. */
  private forget(): void {
    if (this.state !== "abandoned") return;
    this.state = "done";
    this.release();
    this.deadlines.delete(this.slot, this);
  }

  private release(): void {
    abandoned--;
    if (this.options.owner) this.options.owner.abandonedConnects--;
  }
}
