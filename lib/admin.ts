/**
 * Admin endpoint (SPEC §6), on 127.0.0.1:4100 by default: `/healthz`, `/readyz`, `/metrics`
 * (Prometheus text exposition format 0.0.4) and `/connections` (JSON).
 *
 * It is served on the same runtime ports as the proxy (no Bun.serve/Deno.serve), so it works
 * unchanged on both runtimes. It reads one small GET request per connection and answers with
 * `Connection: close`: probes and scrapers need nothing more.
 */
import { reasonPhrase } from "./protocol/http1.ts";
import { lingeringSockets } from "./runtime/linger.ts";
import { abandonedConnects } from "./runtime/pending-connect.ts";
import type { Conn, Listener, Runtime } from "./runtime/types.ts";
import { type ConnRecord, type Histogram, LATENCY_BUCKETS_S, runningBytesDown, type Tracker } from "./tracker.ts";
import { VERSION, runtimeVersion } from "./version.ts";
import { nowMs } from "./clock.ts";

export interface AdminState {
  readonly tracker: Tracker;
  /** True once every listener is bound and until shutdown starts. */
  ready(): boolean;
  draining(): boolean;
  /** Log lines stdout did not take (Logger.droppedLines). */
  logLinesDropped(): number;
}

const MAX_ADMIN_REQUEST_BYTES = 8 * 1024; // a probe's GET fits easily; anything bigger is not ours
/**
 * A connection's request must be in within this: probes send it with the connect (and give up
 * after 1 s by default in Kubernetes), so this only bounds clients that send nothing, whose
 * descriptors ADMIN_MAX_CONNECTIONS caps meanwhile; 5 s leaves a scraper on a busy node room.
 */
const ADMIN_READ_TIMEOUT_MS = 5_000;
/**
 * Admin connections open at once. Probes and scrapers hold one for a few ms; without a cap,
 * clients that connect and send nothing would hold a descriptor each for ADMIN_READ_TIMEOUT_MS,
 * taking the fds the proxy's connections need. Counted in app.ts's RESERVED_FDS. At the cap a
 * new connection evicts the oldest one still waiting for its request rather than being refused:
 * idle connections re-opened every few seconds must not lock the kubelet's probes out.
 */
export const ADMIN_MAX_CONNECTIONS = 32;
/** /connections lists at most this many active connections (the oldest), and counts them all. */
const ADMIN_ACTIVE_SHOWN_MAX = 500;
const encoder = new TextEncoder();
/** WHATWG's "latin1" (windows-1252): only the ASCII request line is looked at, which it decodes as is. */
const latin1 = new TextDecoder("latin1");
/**
 * RFC 9112 §3: method SP request-target SP HTTP-version. The admin endpoint reads only its
 * request line, not the proxy's parser (lib/protocol/http1.ts): it forwards nothing, so the
 * framing that parser guards cannot be smuggled through it, and it is lenient where probes and
 * people with `nc` differ (bare LF, any number of leading empty lines within the request's
 * MAX_ADMIN_REQUEST_BYTES).
 */
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/;
const LEADING_EMPTY_LINES = /^(?:\r?\n)+/;

export function startAdmin(runtime: Runtime, hostname: string, port: number, state: AdminState): Listener {
  let open = 0;
  /** Open connections whose request is not in yet, oldest first (a Set keeps insertion order). */
  const waiting = new Set<Conn>();
  return runtime.listen({
    hostname,
    port,
    onAccept(conn) {
      if (open >= ADMIN_MAX_CONNECTIONS) {
        const oldest = waiting.values().next();
        if (oldest.done) return conn.destroy(); // all of them are being answered
        oldest.value.destroy(); // its onClose counts it out
      }
      open++;
      waiting.add(conn);
      serveOne(conn, state, () => waiting.delete(conn), () => {
        open--;
        waiting.delete(conn);
      });
    },
  });
}

function serveOne(conn: Conn, state: AdminState, requested: () => void, closed: () => void): void {
  let buffered = "";
  let answered = false; // one request per connection: what follows it is not read as another
  const timer = setTimeout(() => conn.destroy(), ADMIN_READ_TIMEOUT_MS);
  conn.setEvents({
    onData(chunk) {
      if (answered) return;
      // RFC 9112 §2.2: empty lines before the request line are ignored (the proxy's listeners do too).
      buffered = (buffered + latin1.decode(chunk)).replace(LEADING_EMPTY_LINES, "");
      if (buffered.length > MAX_ADMIN_REQUEST_BYTES) {
        answered = true;
        return writeReply(conn, 431, "text/plain", "request too large\n");
      }
      // RFC 9112 §2.2: a bare LF ends a line too.
      const headEnd = buffered.search(/\r?\n\r?\n/);
      if (headEnd < 0) return;
      clearTimeout(timer);
      answered = true;
      requested();
      const line = REQUEST_LINE.exec(buffered.slice(0, buffered.search(/\r?\n/)));
      if (!line) return writeReply(conn, 400, "text/plain", "bad request: not an HTTP/1.x request line\n");
      route(conn, line[1]!, line[2]!, state);
    },
    onEnd() {
      conn.end();
    },
    onDrain() {},
    onClose() {
      clearTimeout(timer);
      closed();
    },
  });
}

function route(conn: Conn, method: string, target: string, state: AdminState): void {
  if (method !== "GET" && method !== "HEAD") return writeReply(conn, 405, "text/plain", "method not allowed\n");
  const reply = method === "HEAD" ? replyHead : replyFull;
  // Absolute-form (RFC 9112 §3.2.2) names the same resources: its path is what counts.
  const path = target.replace(/^https?:\/\/[^/?]*/i, "").split("?")[0] || "/";
  switch (path) {
    case "/healthz":
      return reply(conn, 200, "text/plain", "ok\n");
    case "/readyz":
      if (state.ready()) return reply(conn, 200, "text/plain", "ready\n");
      return reply(conn, 503, "text/plain", state.draining() ? "draining\n" : "starting\n");
    case "/metrics":
      return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", renderMetrics(state));
    case "/connections":
      return reply(conn, 200, "application/json", renderConnections(state.tracker));
    default:
      return reply(conn, 404, "text/plain", "not found: try /healthz /readyz /metrics /connections\n");
  }
}

function writeReply(conn: Conn, status: number, type: string, body: string, withBody = true): void {
  const bytes = encoder.encode(body);
  // RFC 9110 §15.5.6: a 405 names the methods that are allowed.
  const allow = status === 405 ? "Allow: GET, HEAD\r\n" : "";
  const head = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nContent-Type: ${type}\r\nContent-Length: ${bytes.byteLength}\r\n${allow}Connection: close\r\nCache-Control: no-store\r\n\r\n`;
  conn.write(encoder.encode(head));
  if (withBody) conn.write(bytes); // RFC 9110 §9.3.2: HEAD gets the same head and no content
  conn.end();
}

const replyFull = (conn: Conn, status: number, type: string, body: string) => writeReply(conn, status, type, body);
const replyHead = (conn: Conn, status: number, type: string, body: string) => writeReply(conn, status, type, body, false);

function renderConnections(tracker: Tracker): string {
  const now = nowMs();
  const view = (r: ConnRecord) => ({
    id: r.id,
    listener: r.listener,
    protocol: r.protocol,
    client: r.client,
    target: r.target,
    bytesUp: r.live ? r.live.bytesUp : r.bytesUp,
    bytesDown: runningBytesDown(r),
    ageMs: Math.round((r.endedMs ?? now) - r.startedMs),
    connectMs: r.connectMs,
    termination: r.termination,
    // As the connection log line names them: the error kind and its detail.
    error: r.error?.kind ?? null,
    detail: r.error?.message ?? null,
  });
  const active = tracker.active.toArray().sort((a, b) => a.id - b.id); // oldest first
  // Bounded: at the connection cap the whole list was megabytes, built while nothing is relayed.
  const shown = active.length > ADMIN_ACTIVE_SHOWN_MAX ? active.slice(0, ADMIN_ACTIVE_SHOWN_MAX) : active;
  return JSON.stringify({ activeCount: active.length, active: shown.map(view), recent: tracker.recent().map(view) }, null, 2) + "\n";
}

function renderMetrics(state: AdminState): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  const stats = [...state.tracker.stats.values()];
  const labels = (s: { listener: string; protocol: string }, extra = "") => `{listener="${s.listener}",protocol="${s.protocol}"${extra}}`;

  family("sidecar_build_info", "gauge", "Always 1; the labels name the release and the runtime.");
  out.push(`sidecar_build_info{version="${VERSION}",runtime="${runtimeVersion()}"} 1`);
  family("sidecar_ready", "gauge", "1 when listeners are bound and the proxy is not draining.");
  out.push(`sidecar_ready ${state.ready() ? 1 : 0}`);
  family("sidecar_connections_active", "gauge", "Open client connections.");
  for (const s of stats) out.push(`sidecar_connections_active${labels(s)} ${s.active}`);
  family("sidecar_orphaned_dials", "gauge", "Dials still in flight whose client has gone; they count against the connection cap until they settle.");
  for (const s of stats) out.push(`sidecar_orphaned_dials${labels(s)} ${s.orphanDials}`);
  family("sidecar_listener_abandoned_connects", "gauge", "Connects past --connect-timeout the runtime still holds (Bun), by listener; they count against its connection cap and its share of the budget.");
  for (const s of stats) out.push(`sidecar_listener_abandoned_connects${labels(s)} ${s.abandonedConnects}`);
  family("sidecar_connections_total", "counter", "Client connections accepted.");
  for (const s of stats) out.push(`sidecar_connections_total${labels(s)} ${s.total}`);
  family("sidecar_connections_refused_total", "counter", "Client connections refused at accept (cap or allow list).");
  for (const s of stats) out.push(`sidecar_connections_refused_total${labels(s)} ${s.refused}`);
  family("sidecar_bytes_total", "counter", "Bytes relayed; direction up is client to server.");
  for (const s of stats) {
    let up = s.bytesUp;
    let down = s.bytesDown;
    state.tracker.active.forEach((r) => {
      if (r.listener !== s.listener) return;
      up += r.live ? r.live.bytesUp : r.bytesUp; // a tunnel's relay, or the HTTP session's running counts
      down += runningBytesDown(r); // never more than a cut leaves: the counter never goes down
    });
    out.push(`sidecar_bytes_total${labels(s, ',direction="up"')} ${up}`, `sidecar_bytes_total${labels(s, ',direction="down"')} ${down}`);
  }
  family("sidecar_errors_total", "counter", "Failed connections by error kind.");
  for (const s of stats) for (const [kind, n] of s.errors) out.push(`sidecar_errors_total${labels(s, `,kind="${kind}"`)} ${n}`);
  family("sidecar_internal_errors_total", "counter", "Exceptions of the proxy's own code caught by its fault barriers (one in a socket event closed that connection).");
  out.push(`sidecar_internal_errors_total ${state.tracker.internalErrors}`);
  family("sidecar_lingering_sockets", "gauge", "Sockets closed to their owner after an answer, still reading until the peer's FIN (lingering close; lib/limits.ts LINGER_MAX_SOCKETS).");
  out.push(`sidecar_lingering_sockets ${lingeringSockets()}`);
  family("sidecar_abandoned_connects", "gauge", "Upstream connects past --connect-timeout that the kernel still holds open (Bun cannot cancel a connect; lib/limits.ts ABANDONED_CONNECTS_MAX).");
  out.push(`sidecar_abandoned_connects ${abandonedConnects()}`);
  family("sidecar_log_lines_dropped_total", "counter", "Log lines not written because stdout was closed or too far behind (lib/limits.ts LOG_QUEUE_MAX_BYTES).");
  out.push(`sidecar_log_lines_dropped_total ${state.logLinesDropped()}`);
  histogram(out, family, "sidecar_connect_duration_seconds", "Upstream connect latency.", stats.map((s) => [labels(s), s.connectLatency] as const));
  histogram(out, family, "sidecar_handshake_duration_seconds", "Client handshake latency (accept to request parsed).", stats.map((s) => [labels(s), s.handshakeLatency] as const));
  return out.join("\n") + "\n";
}

function histogram(
  out: string[],
  family: (name: string, type: string, help: string) => void,
  name: string,
  help: string,
  series: ReadonlyArray<readonly [string, Histogram]>,
): void {
  family(name, "histogram", help);
  for (const [label, h] of series) {
    const base = label.slice(0, -1);
    LATENCY_BUCKETS_S.forEach((le, i) => out.push(`${name}_bucket${base},le="${le}"} ${h.counts[i]}`));
    out.push(`${name}_bucket${base},le="+Inf"} ${h.count}`, `${name}_sum${label} ${h.sumS}`, `${name}_count${label} ${h.count}`);
  }
}
