/**
 * The listener context every protocol driver receives, and `openTunnel`: dial the target, let
 * the driver answer its client (SOCKS reply, `200 Connection established`, nothing for TCP),
 * then hand both sockets to the relay. Every path ends in exactly one `tracker.close`.
 */
import { hostPort } from "./address.ts";
import type { Config } from "./config.ts";
import { dial, type DialOptions, type DialTarget } from "./dial.ts";
import { ProxyError } from "./errors.ts";
import { faultTermination } from "./fault.ts";
import type { Limits } from "./limits.ts";
import type { Logger } from "./log.ts";
import { Holding, Relay, type RelayOptions } from "./relay.ts";
import type { Conn, Runtime } from "./runtime/types.ts";
import { type ConnRecord, type ListenerName, type Tracker, terminationFor } from "./tracker.ts";
import { nowMs } from "./clock.ts";

export interface ListenerContext {
  readonly name: ListenerName;
  readonly protocol: "tcp" | "http" | "socks";
  readonly config: Config;
  readonly limits: Limits;
  readonly runtime: Runtime;
  readonly log: Logger;
  readonly tracker: Tracker;
  /** Reverse listeners: every connection goes here, whatever the client asks for. */
  readonly workload: DialTarget | null;
  /** formatTarget(workload), made once: each connection and request records it. */
  readonly workloadKey: string | null;
  /**
   * How this listener dials: the connect timeout and, on forward listeners, `allowAddress`
   * (false for a dialled address that `--deny-destinations` refuses). One object for every dial.
   */
  readonly dialOptions: DialOptions;
  /** What every relay of this listener is given (relayOptions(limits)), made once. */
  readonly relayOptions: RelayOptions;
  /** True once shutdown has begun: keep-alive connections close after their current response. */
  draining(): boolean;
}

/** A protocol driver: owns the accepted connection from here on. */
export interface ProtocolDriver {
  handle(ctx: ListenerContext, conn: Conn, rec: ConnRecord): void;
  /** Over the connection cap: answer (503 for HTTP) or just close, at once. */
  refuse(conn: Conn): void;
}

export interface TunnelHooks {
  /** Upstream is connected: write the success reply to the client (before relayed bytes). */
  connected?(up: Conn): void;
  /**
   * Dial failed: write the failure reply to the client; the client is then closed. Returns how
   * the log line should name that reply when the error kind alone does not (a SOCKS REP / CD).
   */
  failed?(err: ProxyError): string | void;
}

/** The target a driver should dial: the workload on reverse listeners, the request otherwise. */
export function routeFor(ctx: ListenerContext, requested: DialTarget): DialTarget {
  return ctx.workload ?? requested;
}

export function openTunnel(
  ctx: ListenerContext,
  rec: ConnRecord,
  down: Conn,
  held: Holding,
  target: DialTarget,
  hooks: TunnelHooks,
  earlyBytes?: Uint8Array,
): void {
  rec.target = targetKey(ctx, target);
  const startedMs = nowMs();
  let cancelled = false;
  rec.abort = () => {
    cancelled = true;
    down.destroy();
  };
  // The client reset or closed while we were dialling: nothing can be delivered, so stop now
  // rather than when the connect gives up. (A FIN alone is kept: it may be a half-close of a
  // client that still wants the reply, as with HAProxy's default of no abortonclose.)
  held.onGone = () => {
    // `cancelled` already: the shutdown's abort above destroyed the client, which lands here.
    countHeld(rec, held);
    ctx.tracker.close(rec, cancelled ? "shutdown" : faultTermination(held.error, "client-aborted"));
    cancelled = true;
  };
  ctx.tracker.dialStarted(rec);
  dial(ctx.runtime, target, ctx.dialOptions, (result) => {
    ctx.tracker.dialSettled(rec);
    held.onGone = null;
    try {
      // Bytes the client sent while the dial ran count as carried whatever comes of it; on
      // success the relay counts them as it delivers them.
      if (result instanceof ProxyError || cancelled) countHeld(rec, held);
      if (result instanceof ProxyError) {
        let error = result;
        if (!held.closed && hooks.failed) {
          const told = hooks.failed(result);
          if (told) error = answered(result, told);
          down.endLingering(); // bytes the client sent after its request must not reset the reply
        } else down.end();
        ctx.tracker.close(rec, cancelled ? "shutdown" : terminationFor(result.kind), error);
        return;
      }
      ctx.tracker.connected(rec, nowMs() - startedMs);
      if (cancelled) {
        result.destroy();
        ctx.tracker.close(rec, "shutdown");
        return;
      }
      hooks.connected?.(result);
      startRelay(ctx, rec, down, result, held, earlyBytes);
    } catch (err) {
      // A bug (lib/fault.ts), here rather than in the adapter's connect barrier, which only
      // knows the upstream socket: the client is closed too, and the line says `internal`.
      down.fault(err, "connect");
      if (!(result instanceof ProxyError)) result.destroy();
      ctx.tracker.close(rec, "internal");
    }
  });
}

/** Bytes the client sent while its upstream was dialled, on a tunnel that never started: carried, so counted (once). */
function countHeld(rec: ConnRecord, held: Holding): void {
  rec.bytesUp += held.bytes;
  held.bytes = 0;
}

/**
 * Hands both sockets to a new relay. Kept out of openTunnel on purpose: a closure made inside
 * openTunnel would keep its whole scope (the driver's hooks, the handshake machine, the holding
 * buffer) alive for the tunnel's lifetime, and idle tunnels are meant to be cheap. The record
 * reaches the relay through `rec.live` (bytes, and abort at shutdown).
 */
export function startRelay(ctx: ListenerContext, rec: ConnRecord, down: Conn, up: Conn, held: Holding | null, earlyBytes?: Uint8Array): Relay<ConnRecord> {
  const relay = new Relay(down, up, ctx.relayOptions, ctx.tracker, rec);
  // Bytes of the handshake (HTTP CONNECT head, SOCKS greeting and request) count too.
  relay.bytesUp = rec.bytesUp;
  relay.bytesDown = rec.bytesDown;
  rec.live = relay;
  rec.abort = null;
  relay.start(held, earlyBytes);
  return relay;
}

export function relayOptions(limits: Limits): RelayOptions {
  return {
    maxBufferedBytes: limits.maxBufferedBytes,
    idleTimeoutMs: limits.tunnelIdleTimeoutMs,
    halfClosedTimeoutMs: limits.halfClosedTimeoutMs,
  };
}

export function formatTarget(target: DialTarget): string {
  return hostPort(target.host, target.port);
}

/** formatTarget, without a new string for the workload. */
export function targetKey(ctx: ListenerContext, target: DialTarget): string {
  return target === ctx.workload && ctx.workloadKey !== null ? ctx.workloadKey : formatTarget(target);
}

/** `err` with what the client was told appended to its detail (the log line's, /connections'). */
export function answered(err: ProxyError, told: string): ProxyError {
  return new ProxyError(err.kind, `${err.message}; answered ${told}`, { cause: err.cause });
}
