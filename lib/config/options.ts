/**
 * The single table of every option (SPEC §2): flag, environment variable, annotation keys,
 * default, description and allowed values. `--help`, the argv parser, resolveConfig and the
 * `config` command are all driven from it.
 */
import { formatDuration } from "../duration.ts";
import { DEFAULT_LIMITS, type Limits } from "../limits.ts";

export interface OptionSpec {
  /** Flag name without the dashes: `proxy-port` is `--proxy-port`. */
  readonly flag: string;
  /** Key in ResolvedConfig.sources: the Config (or Limits) field the option sets. */
  readonly key: string;
  /** Environment variable; an empty value counts as unset. */
  readonly env: string;
  /** Annotation keys, canonical first, then the legacy camelCase spelling. [] = flag/env only. */
  readonly annotations: readonly string[];
  /** "boolean" options take no value on the command line (`--no-admin`). */
  readonly type: "string" | "boolean";
  /** Placeholder in --help (`--proxy-port=<N>`). */
  readonly valueHint?: string;
  /** The default as text, parsed like any other source; null = none (off, or computed). */
  readonly default: string | null;
  /** How --help shows the default when `default` alone does not say it. */
  readonly defaultHelp?: string;
  readonly description: string;
  /** Allowed values, as named in error messages. */
  readonly allowed: string;
}

export const ANNOTATION_PREFIX = "sidecar.speedscale.com/";

/** Largest timer the runtimes honour: setTimeout fires at once above 2^31-1 ms (~24.8 days). */
export const MAX_DURATION_MS = 596 * 3_600_000;
export const MAX_BYTES = 1024 * 1024 * 1024;

function annotated(flag: string, legacy: string, key: string, o: Omit<OptionSpec, "flag" | "key" | "env" | "annotations" | "type">): OptionSpec {
  return { flag, key, env: envName(flag), annotations: [ANNOTATION_PREFIX + flag, ANNOTATION_PREFIX + legacy], type: "string", ...o };
}

type PlainFields = Omit<OptionSpec, "flag" | "key" | "env" | "annotations" | "type"> & { type?: "boolean"; env?: string };

function plain(flag: string, key: string, o: PlainFields): OptionSpec {
  return { flag, key, env: envName(flag), annotations: [], type: "string", ...o };
}

/** `--in-bind` -> SIDECAR_IN_BIND. */
function envName(flag: string): string {
  return `SIDECAR_${flag.replace(/-/g, "_").toUpperCase()}`;
}

function durationOption(flag: string, key: keyof Limits, description: string, minMs: number): OptionSpec {
  const allowed = `a duration such as 500ms, 10s, 2m, 1h or 1m30s, ${minMs === 0 ? "0" : "1ms"} to 596h`;
  return plain(flag, key, { valueHint: "DURATION", default: formatDuration(DEFAULT_LIMITS[key]), description, allowed });
}

function bytesOption(flag: string, key: keyof Limits, description: string): OptionSpec {
  const n = DEFAULT_LIMITS[key];
  const text = n % 1024 === 0 ? `${n / 1024}KiB` : String(n);
  return plain(flag, key, { valueHint: "BYTES", default: text, description, allowed: "a byte count such as 8192, 8KiB or 1MiB, 1 to 1024MiB" });
}

const PORT_0 = "an integer 0-65535 (0 = any free port)";

export const OPTIONS: readonly OptionSpec[] = Object.freeze([
  annotated("proxy-type", "proxyType", "proxyType", {
    valueHint: "TYPE",
    default: "dual",
    description: "reverse (inbound to the workload), forward (outbound for the workload) or dual",
    allowed: "reverse, forward, dual",
  }),
  annotated("proxy-protocol", "proxyProtocol", "proxyProtocol", {
    valueHint: "PROTOCOL",
    default: "http",
    description: "protocol of the listeners; tcp only for reverse, tcp:http and tcp:socks only for dual",
    allowed: "tcp, http, socks, tcp:http, tcp:socks (legacy tcp+http, tcp+socks)",
  }),
  annotated("proxy-host", "proxyHost", "proxyHost", {
    valueHint: "HOST",
    default: "localhost",
    description: "workload host the reverse listener delivers to",
    allowed: "a host name or an IP address (IPv6 without brackets)",
  }),
  annotated("proxy-port", "proxyPort", "proxyPort", { valueHint: "N", default: "80", description: "workload port", allowed: "an integer 1-65535" }),
  annotated("proxy-in-port", "proxyInPort", "inPort", { valueHint: "N", default: "4143", description: "reverse listener port", allowed: PORT_0 }),
  annotated("proxy-out-port", "proxyOutPort", "outPort", { valueHint: "N", default: "4140", description: "forward listener port", allowed: PORT_0 }),
  plain("annotations", "annotationsFile", {
    env: "SIDECAR_ANNOTATIONS_FILE",
    valueHint: "FILE",
    default: null,
    defaultHelp: "none",
    description: "Kubernetes downward-API annotations file (sidecar.speedscale.com/* keys)",
    allowed: "a file path",
  }),
  plain("in-bind", "inBind", { valueHint: "ADDRS", default: "0.0.0.0,::", description: "addresses of the reverse listener", allowed: "comma-separated IP addresses" }),
  plain("out-bind", "outBind", { valueHint: "ADDRS", default: "127.0.0.1,::1", description: "addresses of the forward listener", allowed: "comma-separated IP addresses" }),
  plain("auth", "auth", {
    valueHint: "USER:PASSWORD",
    default: null,
    defaultHelp: "off",
    description: "proxy authentication (SOCKS5 RFC 1929, HTTP Basic); prefer --auth-file or the env, which ps does not show",
    allowed: "USER:PASSWORD, user not empty, user and password each 1-255 bytes",
  }),
  plain("auth-file", "auth", {
    valueHint: "FILE",
    default: null,
    defaultHelp: "off",
    description: "file holding USER:PASSWORD (one line)",
    allowed: "a readable file holding USER:PASSWORD",
  }),
  plain("allow-clients", "allowClients", {
    valueHint: "CIDRS",
    default: null,
    defaultHelp: "all",
    description: "client addresses admitted at accept",
    allowed: "comma-separated IP addresses or CIDRs",
  }),
  plain("deny-destinations", "denyDestinations", {
    valueHint: "CIDRS",
    default: null,
    defaultHelp: "none",
    description: "forward destinations refused, checked on the dialled address; 'private' = loopback, RFC 1918, link-local, ULA...",
    allowed: "comma-separated IP addresses or CIDRs and the word private",
  }),
  plain("admin-port", "adminPort", { valueHint: "N", default: "4100", description: "admin endpoint port (/healthz, /readyz, /metrics, /connections)", allowed: PORT_0 }),
  plain("admin-bind", "adminBind", { valueHint: "ADDR", default: "127.0.0.1", description: "admin endpoint address", allowed: "an IP address" }),
  plain("no-admin", "adminPort", { type: "boolean", default: null, defaultHelp: "false", description: "no admin endpoint", allowed: "true, false, 1, 0" }),
  plain("max-connections", "maxConnections", {
    valueHint: "N",
    default: String(DEFAULT_LIMITS.maxConnections),
    description: "open connections per listener; more are refused at once",
    allowed: "an integer 1-1000000",
  }),
  durationOption("connect-timeout", "connectTimeoutMs", "upstream TCP connect (then 504 / SOCKS 0x06)", 1),
  durationOption("handshake-timeout", "handshakeTimeoutMs", "whole SOCKS handshake", 1),
  durationOption("header-timeout", "headerTimeoutMs", "HTTP request head, from its first byte (then 408)", 1),
  durationOption("response-timeout", "responseTimeoutMs", "HTTP exchange with no byte moving either way: 504 before the response head, cut after it", 1),
  durationOption("idle-timeout", "idleTimeoutMs", "idle HTTP keep-alive connection between requests", 1),
  durationOption("tunnel-idle-timeout", "tunnelIdleTimeoutMs", "tunnel with no bytes either way", 1),
  durationOption("half-closed-timeout", "halfClosedTimeoutMs", "tunnel with one direction ended and no byte moving", 1),
  durationOption("drain-delay", "drainDelayMs", "on SIGTERM, listeners keep serving this long", 0),
  durationOption("grace-period", "gracePeriodMs", "after listeners close, open connections get this long", 0),
  bytesOption("max-request-line", "maxRequestLineBytes", "longest HTTP request line (then 414)"),
  bytesOption("max-header-bytes", "maxHeaderBytes", "HTTP header section (then 431)"),
  plain("max-header-count", "maxHeaderCount", {
    valueHint: "N",
    default: String(DEFAULT_LIMITS.maxHeaderCount),
    description: "HTTP header fields per message (then 431)",
    allowed: "an integer 1-100000",
  }),
  bytesOption("max-buffered-bytes", "maxBufferedBytes", "bytes queued toward one side before the other is paused"),
  plain("log-level", "logLevel", { valueHint: "LEVEL", default: "info", description: "log level", allowed: "silent, error, warn, info, debug, trace" }),
  plain("log-format", "logFormat", {
    valueHint: "FORMAT",
    default: null,
    defaultHelp: "json when stdout is not a TTY, else pretty",
    description: "log format",
    allowed: "json, pretty",
  }),
  plain("ready-file", "readyFile", {
    valueHint: "FILE",
    default: null,
    defaultHelp: "none",
    description: "written with the listener addresses once listening (for scripts)",
    allowed: "a file path",
  }),
]);

const BY_FLAG: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.map((o) => [o.flag, o]));

/** The option for a flag name (without dashes), or undefined. */
export function optionByFlag(flag: string): OptionSpec | undefined {
  return BY_FLAG.get(flag);
}
