/**
 * Connection records: who is connected, to where, how many bytes, how it ended. Feeds the one
 * log line per finished connection (SPEC §6, HAProxy-style termination code), `/connections`
 * and `/metrics`, and lets shutdown cut what is still open after the grace period.
 */
import type { ErrorKind, ProxyError } from "./errors.ts";
import { LEVELS, type Logger } from "./log.ts";
import type { RelayTermination } from "./relay.ts";
import { Slots } from "./slots.ts";
import { nowMs } from "./clock.ts";

export type ListenerName = "reverse" | "forward";

export interface LiveTunnel {
  readonly bytesUp: number;
  readonly bytesDown: number;
  abort(termination: "shutdown"): void;
}

export interface ConnRecord {
  readonly id: number;
  readonly listener: ListenerName;
  readonly protocol: string;
  readonly client: string;
  /** Monotonic (lib/clock.ts), as endedMs: only their differences mean anything. */
  readonly startedMs: number;
  target: string | null;
  connectMs: number | null;
  handshakeMs: number | null;
  bytesUp: number;
  bytesDown: number;
  termination: Termination | null;
  /** Why it failed, if it did: the kind (log `error`) and its message (log `detail`). */
  error: ProxyError | null;
  endedMs: number | null;
  /** The relay while a tunnel runs: live byte counters, and how to cut it at shutdown. */
  live: LiveTunnel | null;
  /** Cuts the connection now (end of the shutdown grace period). */
  abort: (() => void) | null;
  /** Listeners closed: end the connection if it is idle between requests (HTTP keep-alive). */
  drain: (() => void) | null;
  /**
   * The client socket an HTTP session writes its answers to: what is still queued there is
   * counted in bytesDown but not sent yet, and running counts (/metrics, /connections) leave it
   * out, since a cut (a reset, a timeout, shutdown) takes it back out of bytesDown. Null otherwise.
   */
  unsentDown: { readonly queuedBytes: number } | null;
  /** HTTP requests served on this connection. */
  requests: number;
  /** Where the record sits in Tracker.active while open. */
  slot: number;
  /** A dial for it is in flight (Tracker.dialStarted / dialSettled): one at a time per record. */
  dialing: boolean;
}

/** Bytes sent toward the client so far, for a record open or closed (bytesDown once it is closed). */
export function runningBytesDown(r: ConnRecord): number {
  if (r.live) return r.live.bytesDown;
  return r.endedMs === null && r.unsentDown !== null ? r.bytesDown - r.unsentDown.queuedBytes : r.bytesDown;
}

/** Bucket bounds of the connect/handshake latency histograms, in seconds (Prometheus `le`). */
export const LATENCY_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_S.length).fill(0);
  count = 0;
  sumS = 0;
  observe(ms: number): void {
    const s = ms / 1000;
    this.count++;
    this.sumS += s;
    for (let i = 0; i < LATENCY_BUCKETS_S.length; i++) if (s <= LATENCY_BUCKETS_S[i]!) this.counts[i]!++;
  }
}

export interface ListenerStats {
  readonly listener: ListenerName;
  readonly protocol: string;
  active: number;
  /**
   * Dials still in flight whose connection has ended (its client reset while we dialled): not
   * active, yet each holds a socket until its connect settles (a dial is not cancelled when its
   * client goes: Bun cannot cancel a connect, and under Deno it runs to its deadline as well),
   * so they count against the connection cap. Without that, one client connecting and resetting
   * in a loop opened a socket per try (67 SYN-SENT with --max-connections 5 in an audit).
   */
  orphanDials: number;
  /**
   * Connects past their deadline that Bun still holds (it cannot cancel one; Deno does): each a
   * socket until the kernel gives up (~2 min). Counted against the cap too, so a client looping
   * connect-and-reset within the cap fills its own listener at most, and cannot spend the
   * process-wide budget (ABANDONED_CONNECTS_MAX) that every listener's dials share.
   */
  abandonedConnects: number;
  /** This listener's share of the abandoned connects' budget (lib/app.ts: budget ÷ listeners). */
  abandonedShare: number;
  total: number;
  refused: number;
  bytesUp: number;
  bytesDown: number;
  readonly errors: Map<string, number>;
  readonly connectLatency: Histogram;
  readonly handshakeLatency: Histogram;
}

const RECENT_KEPT = 200; // closed connections kept for /connections

export class Tracker {
  /** Open connections (lib/slots.ts: a Map kept finished ones reachable for the GC). */
  readonly active = new Slots<ConnRecord>();
  /** Ring of the last RECENT_KEPT closed connections (no array shifting per close). */
  private readonly ring: Array<ConnRecord | undefined> = new Array(RECENT_KEPT);
  private ringNext = 0;
  readonly stats = new Map<ListenerName, ListenerStats>();
  private nextId = 1;
  /** Exceptions our own code threw and lib/fault.ts caught (in a socket event: its connection was closed). */
  internalErrors = 0;
  /** Called when the last active connection finishes (shutdown waits on it). */
  onIdle: (() => void) | null = null;

  constructor(private readonly log: Logger) {}

  /** Whether a finished connection can be logged at all (its line is info, or warn for a failure). */
  logsConnections(): boolean {
    return this.log.level >= LEVELS.warn;
  }

  /** Closed connections, newest first. */
  recent(): ConnRecord[] {
    const out: ConnRecord[] = [];
    for (let i = 1; i <= RECENT_KEPT; i++) {
      const rec = this.ring[(this.ringNext - i + RECENT_KEPT) % RECENT_KEPT];
      if (rec === undefined) break;
      out.push(rec);
    }
    return out;
  }

  register(listener: ListenerName, protocol: string): ListenerStats {
    const s: ListenerStats = {
      listener,
      protocol,
      active: 0,
      orphanDials: 0,
      abandonedConnects: 0,
      abandonedShare: Number.MAX_SAFE_INTEGER,
      total: 0,
      refused: 0,
      bytesUp: 0,
      bytesDown: 0,
      errors: new Map(),
      connectLatency: new Histogram(),
      handshakeLatency: new Histogram(),
    };
    this.stats.set(listener, s);
    return s;
  }

  open(listener: ListenerName, protocol: string, client: string): ConnRecord {
    const rec: ConnRecord = {
      id: this.nextId++,
      listener,
      protocol,
      client,
      startedMs: nowMs(),
      target: null,
      connectMs: null,
      handshakeMs: null,
      bytesUp: 0,
      bytesDown: 0,
      termination: null,
      error: null,
      endedMs: null,
      live: null,
      abort: null,
      drain: null,
      unsentDown: null,
      requests: 0,
      slot: -1,
      dialing: false,
    };
    rec.slot = this.active.add(rec);
    const s = this.stats.get(listener);
    if (s) {
      s.active++;
      s.total++;
    }
    return rec;
  }

  countRefused(listener: ListenerName, reason: string): void {
    const s = this.stats.get(listener);
    if (!s) return;
    s.refused++;
    s.errors.set(reason, (s.errors.get(reason) ?? 0) + 1);
  }

  /** Durations are measured in fractions of a ms (lib/clock.ts): whole ms in records and logs, exact in histograms. */
  connected(rec: ConnRecord, connectMs: number): void {
    rec.connectMs = Math.round(connectMs);
    this.stats.get(rec.listener)?.connectLatency.observe(connectMs);
  }

  /** A dial for `rec` begins; dialSettled must follow, whatever comes of it. */
  dialStarted(rec: ConnRecord): void {
    rec.dialing = true;
  }

  /** The dial begun for `rec` has its result: an orphan no more if its connection had ended. */
  dialSettled(rec: ConnRecord): void {
    if (!rec.dialing) return;
    rec.dialing = false;
    if (rec.endedMs === null) return;
    const s = this.stats.get(rec.listener);
    if (s) s.orphanDials--;
  }

  handshakeDone(rec: ConnRecord): void {
    const handshakeMs = nowMs() - rec.startedMs;
    rec.handshakeMs = Math.round(handshakeMs);
    this.stats.get(rec.listener)?.handshakeLatency.observe(handshakeMs);
  }

  /** A tunnel's relay has finished (lib/relay.ts RelayOwner; tunnel.ts startRelay gives it the record). */
  relayDone(relay: { readonly termination: Termination | null }, rec: ConnRecord): void {
    this.close(rec, relay.termination ?? "client-fin");
  }

  /** Finishes a record once: logs the connection line and updates the counters. */
  close(rec: ConnRecord, termination: Termination, error?: ProxyError): void {
    if (rec.endedMs !== null) return;
    rec.endedMs = nowMs();
    rec.termination = termination;
    if (rec.live) {
      rec.bytesUp = rec.live.bytesUp;
      rec.bytesDown = rec.live.bytesDown;
      rec.live = null;
    }
    rec.abort = null;
    rec.drain = null;
    if (error) rec.error = error;
    this.active.delete(rec.slot, rec);
    this.ring[this.ringNext] = rec;
    this.ringNext = (this.ringNext + 1) % RECENT_KEPT;
    const s = this.stats.get(rec.listener);
    if (s) {
      s.active--;
      if (rec.dialing) s.orphanDials++; // until dialSettled
      s.bytesUp += rec.bytesUp;
      s.bytesDown += rec.bytesDown;
      if (error) s.errors.set(error.kind, (s.errors.get(error.kind) ?? 0) + 1);
    }
    // Building the line costs more than the rest of a short connection: skip it when filtered.
    if (this.log.level >= (error && error.kind !== "authFailed" ? LEVELS.warn : LEVELS.info)) this.logLine(rec, error?.kind);
    if (this.active.size === 0) this.onIdle?.();
  }

  private logLine(rec: ConnRecord, kind: ErrorKind | undefined): void {
    const fields: Record<string, unknown> = {
      id: rec.id,
      listener: rec.listener,
      protocol: rec.protocol,
      client: rec.client,
      target: rec.target,
      bytesUp: rec.bytesUp,
      bytesDown: rec.bytesDown,
      connectMs: rec.connectMs,
      totalMs: Math.round(rec.endedMs! - rec.startedMs),
      termination: rec.termination,
    };
    if (rec.requests > 0) fields.requests = rec.requests;
    if (kind) fields.error = kind;
    if (rec.error) fields.detail = rec.error.message;
    if (kind && kind !== "authFailed") this.log.warn("connection", fields);
    else this.log.info("connection", fields);
  }
}

/** "connectRefused" -> "connect-refused", as a type. */
type Kebab<S extends string> = S extends `${infer H}${infer T}` ? `${H extends Lowercase<H> ? H : `-${Lowercase<H>}`}${Kebab<T>}` : S;

/**
 * Every termination code a connection's log line can carry (README: Termination codes): how a
 * tunnel ended (the relay's), how a session ended without one, and, for a failure before a
 * tunnel exists, its error kind in kebab-case (terminationFor).
 */
export type Termination =
  | RelayTermination
  | "client-aborted" // the client closed or reset inside its request head or handshake, or while its upstream was dialled
  | "answered" // the proxy answered the request itself (TRACE / OPTIONS with Max-Forwards: 0)
  | "flush-timeout" // an answer's tail made no progress for the flush limit (lib/runtime/flush.ts)
  | Kebab<ErrorKind>;

/** "connectRefused" -> "connect-refused": termination codes for failures before a tunnel exists. */
export function terminationFor(kind: ErrorKind): Kebab<ErrorKind> {
  return kind.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) as Kebab<ErrorKind>;
}
