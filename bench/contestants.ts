/**
 * The contestants of each kind (issue #7): sidecar-proxy and the Debian peers it is compared
 * with. Config templates live in bench/peers/; {{PORT}}, {{ECHO_PORT}}, {{HTTP_PORT}} and {{RUN}}
 * are filled in per start. Every event-driven peer gets one worker/thread, as sidecar-proxy has
 * one event loop; microsocks (thread per client), tinyproxy (thread per client) and Dante
 * (pre-forked processes) have no such knob and may use both cores.
 */
import { join } from "node:path";

/** Tunnel kinds (rr, pingpong, bulk, idle) and HTTP kinds (wrk). */
export type Kind = "socks" | "socks4" | "connect" | "tcp" | "http-fwd" | "http-rev";

export const KIND_TITLE: Record<Kind, string> = {
  socks: "SOCKS5",
  socks4: "SOCKS4",
  connect: "HTTP CONNECT",
  tcp: "TCP reverse",
  "http-fwd": "HTTP forward (absolute-form)",
  "http-rev": "HTTP reverse",
};

// A type alias, not an interface: it must be assignable to procs.ts's Record<string, string>.
export type Vars = {
  PORT: string;
  ECHO_PORT: string;
  HTTP_PORT: string;
  RUN: string;
  CONF: string;
};

export interface Contestant {
  /** Unique within its kind. */
  readonly id: string;
  readonly kind: Kind;
  readonly ours: boolean;
  /** loadgen handshake. */
  readonly proto: "plain" | "socks5" | "socks4" | "connect";
  /** Template in bench/peers/ (none for CLI-only peers). */
  readonly config?: string;
  /** Discard output: microsocks logs every client to stderr and has no switch to stop it. */
  readonly quiet?: boolean;
  /**
   * A yardstick, not a peer: never the best peer. bench/floor/relay.ts (the smallest correct Bun
   * relay, also behind a CONNECT) runs only in `modes` (rr and pingpong; TCP bulk in its `queued` mode; no idle); in HTTP reverse it
   * and sidecar-proxy's TCP mode (`sidecar-proxy-tcp`) relay the HTTP bytes unparsed.
   */
  readonly reference?: boolean;
  /**
   * The modes it runs in (all when absent). SOCKS4 runs in rr only: after its handshake a SOCKS4
   * tunnel is the SOCKS5 one (the same relay, in us and in Dante), so rr, where the handshake is
   * the difference, is the mode that says something the SOCKS5 tables do not.
   */
  readonly modes?: readonly string[];
  cmd(v: Vars): string[];
}

export interface Binaries {
  /** How to run sidecar-proxy: the compiled binary, or `bun proxy.ts`. */
  readonly sidecar: string[];
  /** How to run bench/floor/relay.ts: compiled like sidecar-proxy, or with bun. */
  readonly floor: string[];
}

/** Flags every sidecar-proxy contestant gets: no admin, no per-connection log, fast stop. */
const OURS_COMMON = ["--no-admin", "--log-level", "error", "--drain-delay", "0", "--grace-period", "0"];

export function contestants(bin: Binaries, peersDir: string): Contestant[] {
  const sidecar = (kind: Kind, proto: Contestant["proto"], args: (v: Vars) => string[]): Contestant => ({
    id: "sidecar-proxy",
    kind,
    ours: true,
    proto,
    cmd: (v) => [...bin.sidecar, ...args(v), ...OURS_COMMON, "--ready-file", join(v.RUN, `ready-${kind}.json`)],
  });
  const forward = (protocol: string) => (v: Vars) => ["--proxy-type", "forward", "--proxy-protocol", protocol, "--proxy-out-port", v.PORT, "--out-bind", "127.0.0.1"];
  const reverse = (protocol: string, upstream: "ECHO_PORT" | "HTTP_PORT") => (v: Vars) => [
    "--proxy-type", "reverse", "--proxy-protocol", protocol, "--proxy-host", "127.0.0.1", "--proxy-port", v[upstream],
    "--proxy-in-port", v.PORT, "--in-bind", "127.0.0.1",
  ];
  const peer = (id: string, kind: Kind, proto: Contestant["proto"], config: string | undefined, cmd: (v: Vars) => string[], quiet = false): Contestant => ({
    id,
    kind,
    ours: false,
    proto,
    config: config && join(peersDir, config),
    quiet,
    cmd,
  });
  const squid = (v: Vars) => ["squid", "-N", "-f", v.CONF];
  const tinyproxy = (v: Vars) => ["tinyproxy", "-d", "-c", v.CONF];
  const danted = (v: Vars) => ["danted", "-f", v.CONF, "-p", join(v.RUN, "danted.pid")];
  return [
    sidecar("socks", "socks5", forward("socks")),
    peer("microsocks", "socks", "socks5", undefined, (v) => ["microsocks", "-i", "127.0.0.1", "-p", v.PORT], true),
    peer("dante", "socks", "socks5", "danted.conf", danted),

    // microsocks speaks SOCKS5 only.
    { ...sidecar("socks4", "socks4", forward("socks")), modes: ["rr"] },
    { ...peer("dante", "socks4", "socks4", "danted.conf", danted), modes: ["rr"] },

    sidecar("connect", "connect", forward("http")),
    peer("tinyproxy", "connect", "connect", "tinyproxy.conf", tinyproxy),
    peer("squid", "connect", "connect", "squid.conf", squid),
    { id: "bun-floor", kind: "connect", ours: false, reference: true, modes: ["rr", "pingpong"], proto: "connect", cmd: (v) => [...bin.floor, v.PORT, "connect"] },

    sidecar("tcp", "plain", reverse("tcp", "ECHO_PORT")),
    peer("haproxy", "tcp", "plain", "haproxy-tcp.cfg", (v) => ["haproxy", "-db", "-f", v.CONF]),
    peer("nginx", "tcp", "plain", "nginx-stream.conf", (v) => ["nginx", "-e", join(v.RUN, "nginx-stream.err"), "-p", v.RUN, "-c", v.CONF]),
    { id: "bun-floor", kind: "tcp", ours: false, reference: true, modes: ["rr", "pingpong"], proto: "plain", cmd: (v) => [...bin.floor, v.PORT, v.ECHO_PORT] },
    // In bulk the floor needs a write queue and backpressure (its `queued` mode): what a Bun relay can move at best.
    { id: "bun-floor", kind: "tcp", ours: false, reference: true, modes: ["bulk"], proto: "plain", cmd: (v) => [...bin.floor, v.PORT, v.ECHO_PORT, "queued"] },

    sidecar("http-fwd", "plain", forward("http")),
    peer("squid", "http-fwd", "plain", "squid.conf", squid),
    peer("tinyproxy", "http-fwd", "plain", "tinyproxy.conf", tinyproxy),

    sidecar("http-rev", "plain", reverse("http", "HTTP_PORT")),
    peer("nginx", "http-rev", "plain", "nginx-http.conf", (v) => ["nginx", "-e", join(v.RUN, "nginx-http.err"), "-p", v.RUN, "-c", v.CONF]),
    peer("haproxy", "http-rev", "plain", "haproxy-http.cfg", (v) => ["haproxy", "-db", "-f", v.CONF]),
    // Yardsticks for what HTTP processing costs us: the same wrk traffic relayed as plain bytes
    // (no parsing, no rewriting) by the Bun floor relay and by sidecar-proxy's own TCP mode.
    { id: "bun-floor", kind: "http-rev", ours: false, reference: true, modes: ["http"], proto: "plain", cmd: (v) => [...bin.floor, v.PORT, v.HTTP_PORT] },
    { ...sidecar("http-rev", "plain", reverse("tcp", "HTTP_PORT")), id: "sidecar-proxy-tcp", ours: false, reference: true },
  ];
}
