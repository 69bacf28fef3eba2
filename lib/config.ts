/**
 * Configuration (SPEC §2): flags > environment > annotations file > defaults, validated into one
 * frozen Config. resolveConfig is pure (no process.env, no fs): proxy.ts hands it argv-derived
 * flags, the environment and a file reader.
 *
 * Every invalid value or combination throws ConfigError with one line naming the key, the bad
 * value, where it came from and the allowed values. The password never appears in a message or
 * in `sources` (shown as "***").
 */
import { MAX_PORT } from "./address.ts";
import { ConfigError, InvalidValue } from "./config/error.ts";
import { quote } from "./text.ts";
import { MAX_BYTES, MAX_DURATION_MS, OPTIONS, optionByFlag } from "./config/options.ts";
import { checkAuthUsed, checkPortCollisions, checkWorkloadNotSelf } from "./config/checks.ts";
import { Resolver, linkedService, spec } from "./config/resolver.ts";
import * as v from "./config/values.ts";
import type { Limits } from "./limits.ts";

export { ConfigError } from "./config/error.ts";
export { OPTIONS, type OptionSpec } from "./config/options.ts";
export { parseAnnotations } from "./config/annotations.ts";
export { parseArgv, type ParsedArgv, type Command } from "./config/argv.ts";
export { parseDuration, formatDuration } from "./duration.ts";

export type ProxyType = "reverse" | "forward" | "dual";
export type Source = "flag" | "env" | "annotation" | "default";
export type ReverseProtocol = "tcp" | "http" | "socks";
export type ForwardProtocol = "http" | "socks";
export type LogLevel = "silent" | "error" | "warn" | "info" | "debug" | "trace";

export interface Config {
  readonly proxyType: ProxyType;
  /** null when there is no reverse listener. */
  readonly reverseProtocol: ReverseProtocol | null;
  /** null when there is no forward listener. */
  readonly forwardProtocol: ForwardProtocol | null;
  /** Workload host and port (reverse listener target). */
  readonly proxyHost: string;
  readonly proxyPort: number;
  /** Listener ports; 0 = any free port. */
  readonly inPort: number;
  readonly outPort: number;
  readonly inBind: readonly string[];
  readonly outBind: readonly string[];
  /**
   * Which bind lists are the built-in defaults (given by no source): on a host without IPv6 their
   * IPv6 address is skipped, while an address the operator listed, even the same one, is fatal.
   */
  readonly defaultBinds: { readonly in: boolean; readonly out: boolean };
  readonly auth: { readonly username: string; readonly password: string } | null;
  /** CIDR strings as given; [] = every client. */
  readonly allowClients: readonly string[];
  /** CIDR strings or the preset word "private"; [] = none. */
  readonly denyDestinations: readonly string[];
  /** null = --no-admin. */
  readonly adminPort: number | null;
  readonly adminBind: string;
  readonly limits: Limits;
  readonly logLevel: LogLevel;
  readonly logFormat: "json" | "pretty";
  readonly annotationsFile: string | null;
  /** Written with the listener addresses once listening. */
  readonly readyFile: string | null;
}

export interface SourceEntry {
  value: unknown;
  source: Source;
  /** Where exactly: `flag --proxy-port`, `env SIDECAR_PROXY_PORT`, `annotation K in FILE`. */
  from?: string;
}

export interface ResolvedConfig {
  config: Config;
  /** One entry per setting (OptionSpec.key, plus the derived reverse/forwardProtocol). */
  sources: Record<string, SourceEntry>;
  /** Input read and deliberately not used (a Kubernetes service link): logged at start-up. */
  warnings: readonly string[];
}

export interface ResolveInput {
  /** Flag name without dashes -> value (`true` for `--no-admin`); see parseArgv. */
  flags: Record<string, string | boolean | undefined>;
  env: Record<string, string | undefined>;
  /** Reads a whole file as UTF-8; throws if it cannot. */
  readFile: (path: string) => string;
  stdoutIsTTY: boolean;
}

const LIMIT_PARSERS: { readonly [K in keyof Limits]: v.Parser<number> } = {
  maxRequestLineBytes: v.bytes(1, MAX_BYTES),
  maxHeaderBytes: v.bytes(1, MAX_BYTES),
  maxHeaderCount: v.integer(1, 100_000),
  headerTimeoutMs: v.duration(1, MAX_DURATION_MS),
  handshakeTimeoutMs: v.duration(1, MAX_DURATION_MS),
  connectTimeoutMs: v.duration(1, MAX_DURATION_MS),
  responseTimeoutMs: v.duration(1, MAX_DURATION_MS),
  idleTimeoutMs: v.duration(1, MAX_DURATION_MS),
  tunnelIdleTimeoutMs: v.duration(1, MAX_DURATION_MS),
  halfClosedTimeoutMs: v.duration(1, MAX_DURATION_MS),
  maxBufferedBytes: v.bytes(1, MAX_BYTES),
  maxConnections: v.integer(1, 1_000_000),
  drainDelayMs: v.duration(0, MAX_DURATION_MS),
  gracePeriodMs: v.duration(0, MAX_DURATION_MS),
};

const NONE: readonly string[] = Object.freeze([]);

/** Resolves and validates the configuration. Pure; throws ConfigError. */
export function resolveConfig(input: ResolveInput): ResolvedConfig {
  const r = new Resolver(input);
  for (const name of Object.keys(input.flags)) {
    if (input.flags[name] !== undefined && optionByFlag(name) === undefined) throw new ConfigError(`unknown option --${name} (see --help)`);
  }
  r.loadAnnotations();

  const proxyType = r.get("proxy-type", parseProxyType);
  const protocol = r.get("proxy-protocol", parseProtocol);
  const { reverseProtocol, forwardProtocol } = listenerProtocols(r, proxyType, protocol);

  const config: Config = Object.freeze({
    proxyType,
    reverseProtocol,
    forwardProtocol,
    proxyHost: r.get("proxy-host", v.host),
    proxyPort: r.get("proxy-port", v.integer(1, MAX_PORT)),
    inPort: r.get("proxy-in-port", v.portNumber),
    outPort: r.get("proxy-out-port", v.portNumber),
    inBind: r.get("in-bind", v.list(v.ipAddress)),
    outBind: r.get("out-bind", v.list(v.ipAddress)),
    defaultBinds: Object.freeze({ in: r.sources.inBind?.source === "default", out: r.sources.outBind?.source === "default" }),
    auth: r.auth(),
    allowClients: r.optional("allow-clients", v.list(v.cidr)) ?? r.computedDefault("allowClients", NONE),
    denyDestinations: r.optional("deny-destinations", v.list(v.cidr, ["private"])) ?? r.computedDefault("denyDestinations", NONE),
    adminPort: r.adminPort(),
    adminBind: r.get("admin-bind", v.ipAddress),
    limits: r.limits(LIMIT_PARSERS),
    logLevel: r.get("log-level", v.oneOf(["silent", "error", "warn", "info", "debug", "trace"] as const)),
    logFormat: r.optional("log-format", v.oneOf(["json", "pretty"] as const)) ?? r.computedDefault("logFormat", input.stdoutIsTTY ? "pretty" : "json"),
    annotationsFile: r.annotationsFile,
    readyFile: r.optional("ready-file", v.nonEmpty),
  });
  checkPortCollisions(r, config);
  checkAuthUsed(r, config);
  checkWorkloadNotSelf(r, config);
  return { config, sources: r.sources, warnings: Object.freeze([...r.warnings, ...unknownEnv(input.env)]) };
}

/**
 * A SIDECAR_* variable that is no setting (a typo such as SIDECAR_PROXY_PORTS) would otherwise
 * do nothing, silently: it is named in a warning. Service-link variables are not reported.
 */
function unknownEnv(env: ResolveInput["env"]): string[] {
  const known = new Set(OPTIONS.map((o) => o.env));
  return Object.keys(env)
    .filter((name) => name.startsWith("SIDECAR_") && !known.has(name) && linkedService(name, env) === null)
    .sort()
    .map((name) => `env ${name} is not a setting of sidecar-proxy and is ignored (see --help for the SIDECAR_* names)`);
}

function parseProxyType(text: string): ProxyType {
  if (text === "transparent") {
    throw new InvalidValue("transparent is not supported: sidecar-proxy is an inline proxy; use reverse, forward or dual");
  }
  return v.oneOf(["reverse", "forward", "dual"] as const)(text);
}

type Protocol = "tcp" | "http" | "socks" | "tcp:http" | "tcp:socks";

function parseProtocol(text: string): Protocol {
  // Legacy Speedscale spellings.
  const normalized = text === "tcp+http" ? "tcp:http" : text === "tcp+socks" ? "tcp:socks" : text;
  return v.oneOf(["tcp", "http", "socks", "tcp:http", "tcp:socks"] as const)(normalized);
}

/** Which protocols each proxy type accepts (SPEC §2 protocol rules). */
const PROTOCOLS_FOR: Readonly<Record<ProxyType, readonly Protocol[]>> = {
  reverse: ["tcp", "http", "socks"],
  forward: ["http", "socks"],
  dual: ["http", "socks", "tcp:http", "tcp:socks"],
};

/** What each protocol setting means for the reverse and the forward listener. */
const SPLIT: Readonly<Record<Protocol, readonly [ReverseProtocol, ForwardProtocol | null]>> = {
  tcp: ["tcp", null],
  http: ["http", "http"],
  socks: ["socks", "socks"],
  "tcp:http": ["tcp", "http"],
  "tcp:socks": ["tcp", "socks"],
};

/** The protocol of each listener, or a ConfigError naming both keys when they do not fit. */
function listenerProtocols(r: Resolver, type: ProxyType, protocol: Protocol): Pick<Config, "reverseProtocol" | "forwardProtocol"> {
  if (!PROTOCOLS_FOR[type].includes(protocol)) {
    const typeFrom = r.lookup(spec("proxy-type"))?.origin;
    const protocolRaw = r.lookup(spec("proxy-protocol"));
    const why =
      protocol === "tcp"
        ? "tcp applies only to a reverse proxy"
        : type === "forward"
          ? "a forward proxy speaks http or socks"
          : "tcp:http and tcp:socks apply only to a dual proxy";
    throw new ConfigError(
      `invalid proxy-protocol ${quote(protocolRaw?.text ?? protocol)} from ${protocolRaw?.origin} with proxy-type ${quote(type)} from ${typeFrom}: ${why}; allowed with ${type}: ${PROTOCOLS_FOR[type].join(", ")}`,
    );
  }
  const [reverse, forward] = SPLIT[protocol];
  const result = { reverseProtocol: type === "forward" ? null : reverse, forwardProtocol: type === "reverse" ? null : forward };
  // Derived values: shown by `config` with the source of proxy-protocol, or of proxy-type for
  // the listener it turns off.
  const from = r.sources.proxyProtocol ?? { value: protocol, source: "default" };
  const off = r.sources.proxyType ?? { value: type, source: "default" };
  r.sources.reverseProtocol = { ...(result.reverseProtocol === null ? off : from), value: result.reverseProtocol };
  r.sources.forwardProtocol = { ...(result.forwardProtocol === null ? off : from), value: result.forwardProtocol };
  return result;
}
