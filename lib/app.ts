/**
 * The running proxy: binds the listeners a Config asks for, admits or refuses each connection
 * (allow list, connection cap), hands it to its protocol driver, serves the admin endpoint and
 * runs the shutdown sequence of SPEC §6:
 *   signal -> /readyz 503 at once -> listeners keep serving for the drain delay -> listeners
 *   close -> open connections get the grace period -> the rest are cut -> exit 0.
 *   A second signal exits at once (exit code 1: the shutdown was not clean).
 */
import { hostPort, unmapIPv4 } from "./address.ts";
import { bindAddresses } from "./bind.ts";
import type { Config } from "./config.ts";
import { OWN_LISTENER, ownListenerAt, ownListeners } from "./config/checks.ts";
import { asProxyError } from "./errors.ts";
import { catchStrayErrors, onFault, reportFault } from "./fault.ts";
import { ABANDONED_CONNECTS_MAX, CAP_WARN_INTERVAL_MS, LINGER_MAX_SOCKETS } from "./limits.ts";
import { ListenError, listenOrExplain } from "./listen-error.ts";
import { type Logger, ThrottledLine, createLogger } from "./log.ts";
import { type Modules, loadModules } from "./modules.ts";
import { type ReadyFile, removeReadyFile, writeReadyFile } from "./ready-file.ts";
import { setFlushIdleMs } from "./runtime/flush.ts";
import { setLingerBudget } from "./runtime/linger.ts";
import { abandonedConnectBudget, setAbandonedConnectBudget } from "./runtime/pending-connect.ts";
import { loadRuntime } from "./runtime/select.ts";
import type { Conn, Listener, Runtime } from "./runtime/types.ts";
import { type ListenerName, type ListenerStats, Tracker } from "./tracker.ts";
import { type ListenerContext, type ProtocolDriver, formatTarget, relayOptions } from "./tunnel.ts";
import { VERSION, runtimeVersion } from "./version.ts";
import { nowMs } from "./clock.ts";

/**
 * File descriptors kept for the process itself: stdio, listeners, the admin endpoint's
 * ADMIN_MAX_CONNECTIONS, SOCKS clients over the cap awaiting their refusal (REFUSED_READS_MAX),
 * DNS, logs.
 */
const RESERVED_FDS = 64;
/**
 * At exit, how long queued log lines may take to reach stdout's reader: a reader that reads
 * takes 1 MiB (LOG_QUEUE_MAX_BYTES) in well under this; one that has stalled must not hold the
 * exit (a second signal included) for longer.
 */
const EXIT_LOG_FLUSH_MS = 1_000;
/** Accepts quiet for one tick after a burst: collect the burst's garbage (see quietGc). */
const QUIET_GC_TICK_MS = 250;
/** At most one such collection this often: a full GC of a small heap costs a few ms. */
const QUIET_GC_MIN_INTERVAL_MS = 5_000;

interface BoundListener {
  readonly name: ListenerName;
  readonly protocol: string;
  readonly listeners: Listener[];
}

export class ProxyServer {
  readonly tracker: Tracker;
  private readonly bound: BoundListener[] = [];
  private admin: Listener | null = null;
  /** What --ready-file wrote, to remove at stop. */
  private readyFile: ReadyFile | null = null;
  private isReady = false;
  private isDraining = false;
  private stopped = false;
  private accepted = 0;

  constructor(
    readonly config: Config,
    readonly runtime: Runtime,
    readonly log: Logger,
    /** From loadModules(): only the code this configuration uses. */
    private readonly modules: Modules,
  ) {
    this.tracker = new Tracker(log);
  }

  /** Binds everything; throws a ListenError (listener, address, port, OS reason) when a bind fails. */
  start(): void {
    const { config } = this;
    setFlushIdleMs(config.limits.responseTimeoutMs); // closing sockets whose peer stopped reading (flush.ts)
    const groups: Array<[ListenerName, string, readonly string[], number]> = [];
    if (config.reverseProtocol) groups.push(["reverse", config.reverseProtocol, config.inBind, config.inPort]);
    if (config.forwardProtocol) groups.push(["forward", config.forwardProtocol, config.outBind, config.outPort]);
    const cap = this.connectionCap(groups.length);
    // Each listener gets its share of the abandoned connects' budget, so one listener's clients
    // (one client looping connect-then-timeout) cannot stop every listener's dials.
    const abandonedShare = Math.max(1, Math.floor(abandonedConnectBudget() / Math.max(1, groups.length)));
    for (const [name, protocol, addresses, port] of groups) this.bound.push(this.bindGroup(name, protocol, addresses, port, cap, abandonedShare));
    const { adminBind, adminPort } = config;
    if (adminPort !== null) {
      const state = {
        tracker: this.tracker,
        ready: () => this.isReady && !this.isDraining,
        draining: () => this.isDraining,
        logLinesDropped: () => this.log.droppedLines,
      };
      const start = this.modules.startAdmin;
      if (!start) throw new Error("the admin module was not loaded");
      this.admin = listenOrExplain("admin", adminBind, adminPort, () => start(this.runtime, adminBind, adminPort, state));
      this.log.info("listening", { listener: "admin", address: adminBind, port: this.admin.port });
    }
    this.checkNotWorkload();
    if (config.readyFile) this.readyFile = writeReadyFile(config.readyFile, this.addresses());
    this.isReady = true;
    this.quietGc();
    this.log.info("ready", { version: VERSION, runtime: runtimeVersion(), listeners: this.addresses() });
  }

  /**
   * A listener bound on port 0 may be given the workload's port (a workload not listening yet):
   * the workload would then be that listener (config/checks.ts refuses it for ports set by hand).
   * Start-up fails naming it, rather than every connection looping back into the proxy.
   */
  private checkNotWorkload(): void {
    const { config } = this;
    if (config.reverseProtocol === null) return;
    const portOf = (name: ListenerName) => this.bound.find((b) => b.name === name)?.listeners[0]?.port ?? 0;
    const own = ownListeners(config, { reverse: portOf("reverse"), forward: portOf("forward"), admin: this.admin?.port ?? null });
    const self = ownListenerAt(config.proxyHost, config.proxyPort, own);
    if (self === undefined) return;
    const { portFlag, what, why } = OWN_LISTENER[self.name];
    throw new Error(
      `${what} was given port ${self.port} (${portFlag} 0), the workload's (proxy-host ${config.proxyHost}, proxy-port ${config.proxyPort}): ` +
        `${why}; give it a port of its own, or start the workload first`,
    );
  }

  /**
   * Handshakes leave garbage (parsers, promises, buffers), and an idle proxy allocates nothing,
   * so nothing would trigger a collection: after a burst of connections, once accepts have been
   * quiet for a tick, collect once (at most every QUIET_GC_MIN_INTERVAL_MS). Idle tunnels then
   * cost what they hold, not the garbage of their handshakes.
   */
  private quietGc(): void {
    const gc = this.runtime.gc;
    if (!gc) return;
    let last = 0;
    let collected = 0;
    let collectedAtMs = -Infinity; // nowMs() counts from process start: 0 would hold off the first collection 5 s
    const timer = setInterval(() => {
      const now = this.accepted;
      if (now !== last) last = now; // still busy
      else if (now !== collected && nowMs() - collectedAtMs >= QUIET_GC_MIN_INTERVAL_MS) {
        collected = now;
        collectedAtMs = nowMs();
        gc();
      }
    }, QUIET_GC_TICK_MS);
    (timer as { unref?: () => void }).unref?.();
  }

  addresses(): Record<string, Array<{ address: string; port: number }>> {
    const out: Record<string, Array<{ address: string; port: number }>> = {};
    for (const b of this.bound) out[b.name] = b.listeners.map((l) => ({ address: l.hostname, port: l.port }));
    if (this.admin) out.admin = [{ address: this.admin.hostname, port: this.admin.port }];
    return out;
  }

  /** Per-listener cap: the configured one, but never past what the fd limit allows (2 fds a tunnel). */
  private connectionCap(listenerCount: number): number {
    const configured = this.config.limits.maxConnections;
    const fds = this.runtime.fdLimit();
    if (listenerCount === 0) return configured;
    if (fds === undefined) {
      // Deno without --allow-all cannot read /proc/self/limits.
      this.log.warn("file-descriptor limit unknown: the connection cap is not lowered to fit it; keep --max-connections below half of `ulimit -n`", { maxConnections: configured });
      return configured;
    }
    // Lingering sockets (Conn.endLingering) and abandoned connects (lib/runtime/pending-connect.ts)
    // each get up to an eighth of what is left, the connections the rest.
    const eighth = Math.floor(Math.max(0, fds - RESERVED_FDS) / 8);
    const lingerBudget = Math.min(LINGER_MAX_SOCKETS, eighth);
    // At least one: with none, every dial is refused as over the budget (under `ulimit -n 71`
    // and below, an eighth of what is left is 0), though nothing has been abandoned.
    const abandonedBudget = Math.max(1, Math.min(ABANDONED_CONNECTS_MAX, eighth));
    setLingerBudget(lingerBudget);
    setAbandonedConnectBudget(abandonedBudget);
    const byFds = Math.max(1, Math.floor((fds - RESERVED_FDS - lingerBudget - abandonedBudget) / 2 / listenerCount));
    if (byFds < configured) {
      this.log.warn("connection cap lowered to fit the file-descriptor limit", { configured, effective: byFds, fdLimit: fds });
      return byFds;
    }
    return configured;
  }

  private bindGroup(name: ListenerName, protocol: string, addresses: readonly string[], port: number, cap: number, abandonedShare: number): BoundListener {
    const driver = this.modules.drivers.get(protocol);
    if (!driver) throw new Error(`the ${protocol} driver was not loaded`);
    const stats = this.tracker.register(name, protocol);
    stats.abandonedShare = abandonedShare;
    const ctx = this.listenerContext(name, protocol, stats);
    // The client's address and port outlive the socket only in the log line and /connections:
    // with neither, records name no client and the address is read only if something asks.
    const recordClient = this.tracker.logsConnections() || this.config.adminPort !== null;
    const onAccept = this.acceptor(ctx, driver, stats, cap, recordClient);
    const bound = bindAddresses({
      name,
      addresses,
      port,
      defaultBinds: name === "reverse" ? this.config.defaultBinds.in : this.config.defaultBinds.out,
      listen: (address, boundPort) => this.runtime.listen({ hostname: address, port: boundPort, peerAtAccept: recordClient, onAccept }),
    }, this.log);
    for (const { address, listener } of bound) {
      const fields: Record<string, unknown> = { listener: name, protocol, address, port: listener.port, maxConnections: cap };
      if (ctx.workloadKey) fields.workload = ctx.workloadKey; // "[::1]:8080", as connection lines print it
      this.log.info("listening", fields);
    }
    return { name, protocol, listeners: bound.map((b) => b.listener) };
  }

  private listenerContext(name: ListenerName, protocol: string, stats: ListenerStats): ListenerContext {
    const workload = name === "reverse" ? { host: this.config.proxyHost, port: this.config.proxyPort } : null;
    const deny = this.modules.matchers.deny;
    return {
      name,
      protocol: protocol as ListenerContext["protocol"],
      config: this.config,
      limits: this.config.limits,
      runtime: this.runtime,
      log: this.log,
      tracker: this.tracker,
      workload,
      workloadKey: workload && formatTarget(workload),
      dialOptions: {
        timeoutMs: this.config.limits.connectTimeoutMs,
        allowAddress: name === "forward" && deny ? (address) => !deny(address) : undefined,
        shareDeadline: name === "forward",
        owner: stats,
      },
      relayOptions: relayOptions(this.config.limits),
      draining: () => this.isDraining,
    };
  }

  /** Admits or refuses each accepted connection (allow list, cap), then hands it to its driver. */
  private acceptor(ctx: ListenerContext, driver: ProtocolDriver, stats: ListenerStats, cap: number, recordClient: boolean): (conn: Conn) => void {
    const { name, protocol } = ctx;
    const allowClient = this.modules.matchers.allow;
    // What holds the cap is named too: open connections, and the dials that hold sockets without one.
    const capWarning = new ThrottledLine(CAP_WARN_INTERVAL_MS, (refused) =>
      this.log.warn("over the connection cap: refusing new connections", {
        listener: name,
        cap,
        refused,
        active: stats.active,
        orphanDials: stats.orphanDials,
        abandonedConnects: stats.abandonedConnects,
      }),
    );
    return (conn: Conn) => {
      if (allowClient && !allowClient(conn.remoteAddress)) {
        this.tracker.countRefused(name, "denied");
        this.log.debug("client refused by --allow-clients", { listener: name, client: conn.remoteAddress });
        return conn.destroy();
      }
      // Dials whose client has gone, and connects past their deadline that Bun still holds,
      // take a socket each (ListenerStats.orphanDials, abandonedConnects).
      if (stats.active + stats.orphanDials + stats.abandonedConnects >= cap) {
        this.tracker.countRefused(name, "limitExceeded");
        capWarning.hit();
        return driver.refuse(conn);
      }
      this.accepted++;
      const rec = this.tracker.open(name, protocol, recordClient ? hostPort(unmapIPv4(conn.remoteAddress), conn.remotePort) : "-");
      try {
        driver.handle(ctx, conn, rec);
      } catch (err) {
        // A bug (lib/fault.ts): the record is closed first, so the line says `internal`.
        this.tracker.close(rec, "internal", asProxyError(err));
        reportFault(err, "accept");
        conn.destroy();
      }
    };
  }

  /** SIGTERM/SIGINT. Returns when the process should exit (the caller exits). */
  shutdown(signal: string, exit: (code: number) => void): void {
    if (this.isDraining) {
      this.log.warn("second signal: exiting now", { signal, active: this.tracker.active.size });
      this.removeReadyFile();
      return exit(1);
    }
    this.isDraining = true;
    const { drainDelayMs, gracePeriodMs } = this.config.limits;
    this.log.info("draining", { signal, drainDelayMs, gracePeriodMs, active: this.tracker.active.size });
    setTimeout(async () => {
      await this.stopListeners();
      const finish = () => {
        if (this.stopped) return;
        this.stopped = true;
        this.logSummary();
        exit(0);
      };
      if (this.tracker.active.size === 0) return finish();
      this.tracker.onIdle = finish;
      setTimeout(() => {
        const cut = this.tracker.active.size;
        // The last cut would run finish (onIdle) before the line that says why: finish below.
        this.tracker.onIdle = null;
        if (cut > 0) this.log.warn("grace period over: connections cut", { cut });
        for (const rec of this.tracker.active.toArray()) {
          if (rec.live) rec.live.abort("shutdown");
          else rec.abort?.();
        }
        finish();
      }, gracePeriodMs).unref?.();
    }, drainDelayMs);
  }

  /** Resolves once every port is released (Deno frees a port a tick after close). */
  private async stopListeners(): Promise<void> {
    const released: Array<void | Promise<void>> = [];
    for (const b of this.bound) for (const l of b.listeners) released.push(l.stop());
    await Promise.all(released);
    for (const rec of this.tracker.active.toArray()) rec.drain?.();
    this.log.info("listeners closed", { active: this.tracker.active.size });
  }

  private logSummary(): void {
    let connections = 0;
    let bytesUp = 0;
    let bytesDown = 0;
    let errors = 0;
    for (const s of this.tracker.stats.values()) {
      connections += s.total;
      bytesUp += s.bytesUp;
      bytesDown += s.bytesDown;
      for (const n of s.errors.values()) errors += n;
    }
    this.admin?.stop();
    this.removeReadyFile();
    this.log.info("stopped", { connections, bytesUp, bytesDown, errors });
  }

  /** Not listening any more (a clean stop or a second signal): a script must not find a stale file. */
  private removeReadyFile(): void {
    const file = this.readyFile;
    if (!file) return;
    this.readyFile = null; // once: a second signal and the summary both get here
    const error = removeReadyFile(file);
    if (error !== null) this.log.warn("cannot remove the ready file", { file: file.path, error });
  }
}

/** Each fault (lib/fault.ts) is logged with its stack and counted. */
export function logFaults(log: Logger, tracker: Tracker): void {
  onFault((err, site) => {
    tracker.internalErrors++;
    log.error("internal error", { site, error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
  });
}

export async function runProxy(config: Config, warnings: readonly string[] = []): Promise<void> {
  const runtime = await loadRuntime();
  const log = createLogger(config.logLevel, config.logFormat, runtime.writeStdout);
  for (const message of warnings) log.warn("configuration", { detail: message });
  const server = new ProxyServer(config, runtime, log, await loadModules(config));
  logFaults(log, server.tracker);
  catchStrayErrors();
  // Handlers first: a signal that follows the "ready" line must find them installed (under
  // Deno, process.on for a signal takes effect only after a while).
  // The last lines (stopped, cannot start) reach a reader that is still reading.
  const exit = (code: number) => void runtime.flushStdout(EXIT_LOG_FLUSH_MS).then(() => process.exit(code));
  const onSignal = (signal: string) => server.shutdown(signal, exit);
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  // No reload (the configuration is read once): HUP is logged and ignored rather than killing
  // every tunnel without a drain, as its default action would (nginx, Dante, Squid reload on it).
  process.on("SIGHUP", () => log.warn("signal ignored", { signal: "SIGHUP", reason: "no reload: the configuration is read at start-up; SIGTERM stops the proxy" }));
  try {
    server.start();
  } catch (err) {
    const where = err instanceof ListenError ? { listener: err.listener, address: err.address, port: err.port, code: err.code } : {};
    log.error("cannot start", { ...where, error: err instanceof Error ? err.message : String(err) });
    exit(1);
  }
}
