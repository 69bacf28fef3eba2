/**
 * Unit tests of the configuration (SPEC §2): resolveConfig, the annotations file format,
 * durations, argv parsing. Pure: files are a map, the environment an object.
 */
import { describe, expect, test } from "bun:test";
import {
  type Config,
  ConfigError,
  OPTIONS,
  type ResolvedConfig,
  formatDuration,
  parseAnnotations,
  parseArgv,
  parseDuration,
  resolveConfig,
} from "../lib/config.ts";
import { goUnquote } from "../lib/config/annotations.ts";
import { DEFAULT_LIMITS, type Limits } from "../lib/limits.ts";
import { createMatcher } from "../lib/policy.ts";

const ANN = "/etc/podinfo/annotations";
const A = "sidecar.speedscale.com/";

interface Input {
  flags?: Record<string, string | boolean | undefined>;
  env?: Record<string, string | undefined>;
  files?: Record<string, string>;
  tty?: boolean;
}

function resolve({ flags = {}, env = {}, files = {}, tty = false }: Input = {}): ResolvedConfig {
  return resolveConfig({
    flags,
    env,
    stdoutIsTTY: tty,
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
  });
}

/** The ConfigError message resolve() throws (fails the test if it does not throw one). */
function errorOf(input: Input): string {
  try {
    resolve(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(input)}`);
}

/** An annotations file as the kubelet writes it (Go %q values). */
function annotationsFile(entries: Record<string, string>): string {
  return Object.entries(entries)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join("\n");
}

describe("defaults", () => {
  test("the documented defaults (SPEC §2, §5)", () => {
    const { config } = resolve();
    const expected: Config = {
      proxyType: "dual",
      reverseProtocol: "http",
      forwardProtocol: "http",
      proxyHost: "localhost",
      proxyPort: 80,
      inPort: 4143,
      outPort: 4140,
      inBind: ["0.0.0.0", "::"],
      outBind: ["127.0.0.1", "::1"],
      defaultBinds: { in: true, out: true },
      auth: null,
      allowClients: [],
      denyDestinations: [],
      adminPort: 4100,
      adminBind: "127.0.0.1",
      limits: DEFAULT_LIMITS,
      logLevel: "info",
      logFormat: "json",
      annotationsFile: null,
      readyFile: null,
    };
    expect(config).toEqual(expected);
  });

  test("log-format defaults to pretty on a TTY, json otherwise", () => {
    expect(resolve({ tty: true }).config.logFormat).toBe("pretty");
    expect(resolve({ tty: false }).config.logFormat).toBe("json");
    expect(resolve({ tty: true, flags: { "log-format": "json" } }).config.logFormat).toBe("json");
  });

  test("config and nested objects are frozen", () => {
    const { config } = resolve({ flags: { auth: "u:p", "allow-clients": "127.0.0.0/8" } });
    for (const part of [config, config.limits, config.inBind, config.outBind, config.auth, config.allowClients, config.denyDestinations]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
  });

  test("every setting has a source entry; defaults say so", () => {
    const { sources } = resolve();
    for (const o of OPTIONS) expect(sources[o.key]?.source).toBe("default");
    expect(sources.reverseProtocol).toEqual({ value: "http", source: "default" });
    expect(sources.connectTimeoutMs).toEqual({ value: 10_000, source: "default" });
  });

  test("a listener proxy-type turns off has proxy-type's source; the other, proxy-protocol's", () => {
    const { sources } = resolve({ flags: { "proxy-type": "reverse" }, env: { SIDECAR_PROXY_PROTOCOL: "tcp" } });
    expect(sources.forwardProtocol).toEqual({ value: null, source: "flag", from: "flag --proxy-type" });
    expect(sources.reverseProtocol).toEqual({ value: "tcp", source: "env", from: "env SIDECAR_PROXY_PROTOCOL" });
  });

  test("OPTIONS: unique flags and env names, annotations only for the six proxy keys", () => {
    expect(new Set(OPTIONS.map((o) => o.flag)).size).toBe(OPTIONS.length);
    expect(new Set(OPTIONS.map((o) => o.env)).size).toBe(OPTIONS.length);
    expect(OPTIONS.filter((o) => o.annotations.length > 0).map((o) => o.flag)).toEqual([
      "proxy-type",
      "proxy-protocol",
      "proxy-host",
      "proxy-port",
      "proxy-in-port",
      "proxy-out-port",
    ]);
    for (const o of OPTIONS) expect(o.env).toMatch(/^SIDECAR_[A-Z_]+$/);
  });
});

/** Per option: two valid texts and what they become in Config. */
interface Sample {
  readonly flag: string;
  readonly texts: readonly [string, string, string];
  readonly get: (c: Config) => unknown;
  readonly values: readonly [unknown, unknown, unknown];
}

const limit = (k: keyof Limits) => (c: Config) => c.limits[k];

const SAMPLES: readonly Sample[] = [
  { flag: "proxy-type", texts: ["reverse", "forward", "dual"], get: (c) => c.proxyType, values: ["reverse", "forward", "dual"] },
  { flag: "proxy-protocol", texts: ["socks", "http", "tcp:socks"], get: (c) => c.forwardProtocol, values: ["socks", "http", "socks"] },
  { flag: "proxy-host", texts: ["127.0.0.9", "workload.default.svc", "::1"], get: (c) => c.proxyHost, values: ["127.0.0.9", "workload.default.svc", "::1"] },
  { flag: "proxy-port", texts: ["1", "8080", "65535"], get: (c) => c.proxyPort, values: [1, 8080, 65535] },
  { flag: "proxy-in-port", texts: ["0", "5000", "65535"], get: (c) => c.inPort, values: [0, 5000, 65535] },
  { flag: "proxy-out-port", texts: ["0", "5001", "1"], get: (c) => c.outPort, values: [0, 5001, 1] },
  { flag: "in-bind", texts: ["127.0.0.1", "127.0.0.2, ::1", "::"], get: (c) => c.inBind, values: [["127.0.0.1"], ["127.0.0.2", "::1"], ["::"]] },
  { flag: "out-bind", texts: ["::1", "127.0.0.2", "0.0.0.0"], get: (c) => c.outBind, values: [["::1"], ["127.0.0.2"], ["0.0.0.0"]] },
  { flag: "allow-clients", texts: ["127.16.0.0/12", "::1/128,127.0.0.2", "::ffff:127.0.0.3"], get: (c) => c.allowClients, values: [["127.16.0.0/12"], ["::1/128", "127.0.0.2"], ["::ffff:127.0.0.3"]] },
  { flag: "deny-destinations", texts: ["private", "private,127.0.0.9/32", "::/0"], get: (c) => c.denyDestinations, values: [["private"], ["private", "127.0.0.9/32"], ["::/0"]] },
  { flag: "admin-port", texts: ["0", "9901", "4101"], get: (c) => c.adminPort, values: [0, 9901, 4101] },
  { flag: "admin-bind", texts: ["0.0.0.0", "::1", "127.1.2.3"], get: (c) => c.adminBind, values: ["0.0.0.0", "::1", "127.1.2.3"] },
  { flag: "max-connections", texts: ["1", "10000", "1000000"], get: limit("maxConnections"), values: [1, 10_000, 1_000_000] },
  { flag: "connect-timeout", texts: ["500ms", "2m", "1m30s"], get: limit("connectTimeoutMs"), values: [500, 120_000, 90_000] },
  { flag: "handshake-timeout", texts: ["1s", "30s", "1.5s"], get: limit("handshakeTimeoutMs"), values: [1_000, 30_000, 1_500] },
  { flag: "header-timeout", texts: ["5s", "1ms", "1h"], get: limit("headerTimeoutMs"), values: [5_000, 1, 3_600_000] },
  { flag: "response-timeout", texts: ["90s", "2m", "10m"], get: limit("responseTimeoutMs"), values: [90_000, 120_000, 600_000] },
  { flag: "idle-timeout", texts: ["75s", "5s", "1h"], get: limit("idleTimeoutMs"), values: [75_000, 5_000, 3_600_000] },
  { flag: "tunnel-idle-timeout", texts: ["2h", "30m", "596h"], get: limit("tunnelIdleTimeoutMs"), values: [7_200_000, 1_800_000, 596 * 3_600_000] },
  { flag: "half-closed-timeout", texts: ["30s", "1m", "2h"], get: limit("halfClosedTimeoutMs"), values: [30_000, 60_000, 7_200_000] },
  { flag: "drain-delay", texts: ["0", "0s", "10s"], get: limit("drainDelayMs"), values: [0, 0, 10_000] },
  { flag: "grace-period", texts: ["0ms", "1m", "30s"], get: limit("gracePeriodMs"), values: [0, 60_000, 30_000] },
  { flag: "max-request-line", texts: ["4096", "16KiB", "1MiB"], get: limit("maxRequestLineBytes"), values: [4096, 16_384, 1_048_576] },
  { flag: "max-header-bytes", texts: ["60KiB", "1", "1024MiB"], get: limit("maxHeaderBytes"), values: [61_440, 1, 1_073_741_824] },
  { flag: "max-header-count", texts: ["101", "1", "100000"], get: limit("maxHeaderCount"), values: [101, 1, 100_000] },
  { flag: "max-buffered-bytes", texts: ["1MiB", "16384", "1KiB"], get: limit("maxBufferedBytes"), values: [1_048_576, 16_384, 1_024] },
  { flag: "log-level", texts: ["debug", "silent", "trace"], get: (c) => c.logLevel, values: ["debug", "silent", "trace"] },
  { flag: "log-format", texts: ["pretty", "json", "pretty"], get: (c) => c.logFormat, values: ["pretty", "json", "pretty"] },
  { flag: "ready-file", texts: ["/tmp/ready", "/run/r.json", "r"], get: (c) => c.readyFile, values: ["/tmp/ready", "/run/r.json", "r"] },
];

/** Options with their own tests below (they combine with another option or read files). */
const SPECIAL = ["annotations", "auth", "auth-file", "no-admin"];

describe("precedence: flag > env > annotation > default", () => {
  test("every option is covered by a sample or a special test", () => {
    const covered = new Set([...SAMPLES.map((s) => s.flag), ...SPECIAL]);
    expect(OPTIONS.map((o) => o.flag).filter((f) => !covered.has(f))).toEqual([]);
  });

  for (const s of SAMPLES) {
    const option = OPTIONS.find((o) => o.flag === s.flag);
    if (option === undefined) throw new Error(`no option ${s.flag}`);
    // proxy-protocol needs a type that accepts all three samples.
    const base: Record<string, string> = s.flag === "proxy-protocol" ? { "proxy-type": "dual" } : {};
    const [flagText, envText, annText] = s.texts;

    test(`${s.flag}: flag beats env beats annotation`, () => {
      const files = { [ANN]: option.annotations.length > 0 ? annotationsFile({ [option.annotations[0] ?? ""]: annText }) : "" };
      const all = resolve({ flags: { ...base, annotations: ANN, [s.flag]: flagText }, env: { [option.env]: envText }, files });
      expect(s.get(all.config)).toEqual(s.values[0]);
      expect(all.sources[option.key]).toMatchObject({ source: "flag", from: `flag --${s.flag}` });

      const envOnly = resolve({ flags: { ...base, annotations: ANN }, env: { [option.env]: envText }, files });
      expect(s.get(envOnly.config)).toEqual(s.values[1]);
      expect(envOnly.sources[option.key]).toMatchObject({ source: "env", from: `env ${option.env}` });

      const fallback = resolve({ flags: { ...base, annotations: ANN }, files });
      if (option.annotations.length > 0) {
        expect(s.get(fallback.config)).toEqual(s.values[2]);
        expect(fallback.sources[option.key]).toMatchObject({ source: "annotation", from: `annotation ${option.annotations[0]} in ${ANN}` });
      } else {
        expect(fallback.sources[option.key]?.source).toBe("default");
      }
    });

    test(`${s.flag}: an empty env var counts as unset`, () => {
      const { sources } = resolve({ flags: base, env: { [option.env]: "" } });
      expect(sources[option.key]?.source).toBe("default");
    });
  }

  test("legacy camelCase annotation keys work for each annotated option", () => {
    for (const o of OPTIONS.filter((x) => x.annotations.length > 0)) {
      const sample = SAMPLES.find((s) => s.flag === o.flag);
      if (sample === undefined) throw new Error(o.flag);
      const legacy = o.annotations[1] ?? "";
      expect(legacy).toMatch(/^sidecar\.speedscale\.com\/proxy[A-Z]/);
      const { config, sources } = resolve({
        flags: { annotations: ANN, ...(o.flag === "proxy-protocol" ? { "proxy-type": "dual" } : {}) },
        files: { [ANN]: annotationsFile({ [legacy]: sample.texts[0] }) },
      });
      expect(sample.get(config)).toEqual(sample.values[0]);
      expect(sources[o.key]?.from).toBe(`annotation ${legacy} in ${ANN}`);
    }
  });

  test("annotations file from env SIDECAR_ANNOTATIONS_FILE; the flag wins over it", () => {
    const files = { "/a": `${A}proxy-port="81"`, "/b": `${A}proxy-port="82"` };
    expect(resolve({ env: { SIDECAR_ANNOTATIONS_FILE: "/a" }, files }).config.proxyPort).toBe(81);
    const both = resolve({ flags: { annotations: "/b" }, env: { SIDECAR_ANNOTATIONS_FILE: "/a" }, files });
    expect(both.config.proxyPort).toBe(82);
    expect(both.config.annotationsFile).toBe("/b");
    expect(both.sources.annotationsFile).toEqual({ value: "/b", source: "flag", from: "flag --annotations" });
  });
});

describe("proxy type and protocol", () => {
  const OK: Array<[string, string, string | null, string | null]> = [
    ["reverse", "tcp", "tcp", null],
    ["reverse", "http", "http", null],
    ["reverse", "socks", "socks", null],
    ["forward", "http", null, "http"],
    ["forward", "socks", null, "socks"],
    ["dual", "http", "http", "http"],
    ["dual", "socks", "socks", "socks"],
    ["dual", "tcp:http", "tcp", "http"],
    ["dual", "tcp:socks", "tcp", "socks"],
    ["dual", "tcp+http", "tcp", "http"],
    ["dual", "tcp+socks", "tcp", "socks"],
  ];
  for (const [type, protocol, reverse, forward] of OK) {
    test(`${type} + ${protocol} -> reverse ${reverse}, forward ${forward}`, () => {
      const { config, sources } = resolve({ flags: { "proxy-type": type, "proxy-protocol": protocol } });
      expect(config.proxyType).toBe(type as Config["proxyType"]);
      expect(config.reverseProtocol).toBe(reverse as Config["reverseProtocol"]);
      expect(config.forwardProtocol).toBe(forward as Config["forwardProtocol"]);
      expect(sources.proxyProtocol?.value).toBe(protocol.replace("+", ":"));
    });
  }

  const BAD: Array<[string, string, string]> = [
    ["forward", "tcp", "allowed with forward: http, socks"],
    ["forward", "tcp:http", "allowed with forward: http, socks"],
    ["forward", "tcp+socks", "allowed with forward: http, socks"],
    ["reverse", "tcp:http", "allowed with reverse: tcp, http, socks"],
    ["reverse", "tcp:socks", "allowed with reverse: tcp, http, socks"],
    ["dual", "tcp", "allowed with dual: http, socks, tcp:http, tcp:socks"],
  ];
  for (const [type, protocol, allowed] of BAD) {
    test(`${type} + ${protocol} is an error naming both keys and sources`, () => {
      const message = errorOf({ flags: { "proxy-type": type }, env: { SIDECAR_PROXY_PROTOCOL: protocol } });
      expect(message).toContain(`proxy-protocol "${protocol}" from env SIDECAR_PROXY_PROTOCOL`);
      expect(message).toContain(`proxy-type "${type}" from flag --proxy-type`);
      expect(message).toContain(allowed);
    });
  }

  test("the default protocol (http) with the default type (dual) is named as default", () => {
    const message = errorOf({ flags: { "proxy-protocol": "tcp" } });
    expect(message).toContain(`proxy-type "dual" from default`);
  });

  test("transparent gets its own explanation", () => {
    const message = errorOf({ env: { SIDECAR_PROXY_TYPE: "transparent" } });
    expect(message).toContain("transparent is not supported: sidecar-proxy is an inline proxy; use reverse, forward or dual");
    expect(message).toContain(`proxy-type "transparent" from env SIDECAR_PROXY_TYPE`);
  });
});

describe("invalid values: one line with key, value, source and allowed values", () => {
  const CASES: Array<[string, string, string]> = [
    // flag, bad text, allowed (as in the message)
    ["proxy-type", "Reverse", "reverse, forward, dual"],
    ["proxy-type", "", "reverse, forward, dual"],
    ["proxy-protocol", "udp", "tcp, http, socks, tcp:http, tcp:socks"],
    ["proxy-protocol", "HTTP", "tcp, http, socks, tcp:http, tcp:socks"],
    ["proxy-host", "", "a host name or an IP address"],
    ["proxy-host", "[::1]", "a host name or an IP address"],
    ["proxy-host", "host:80", "a host name or an IP address"],
    ["proxy-host", "bad host", "a host name or an IP address"],
    ["proxy-host", "1.2.3", "a host name or an IP address"],
    ["proxy-host", "0x7f.0.0.1", "a host name or an IP address"],
    ["proxy-host", "workload.0x10", "a host name or an IP address"],
    ["proxy-port", "80x", "an integer 1-65535"],
    ["proxy-port", " 80", "an integer 1-65535"],
    ["proxy-port", "80 ", "an integer 1-65535"],
    ["proxy-port", "0", "an integer 1-65535"],
    ["proxy-port", "65536", "an integer 1-65535"],
    ["proxy-port", "-1", "an integer 1-65535"],
    ["proxy-port", "8e1", "an integer 1-65535"],
    ["proxy-port", "0x50", "an integer 1-65535"],
    ["proxy-in-port", "65536", "an integer 0-65535"],
    ["proxy-out-port", "4140.0", "an integer 0-65535"],
    ["admin-port", "http", "an integer 0-65535"],
    ["in-bind", "localhost", "comma-separated IP addresses"],
    ["in-bind", "127.0.0.0/8", "comma-separated IP addresses"],
    ["in-bind", "127.0.0.1,,::", "comma-separated IP addresses"],
    ["in-bind", "::1,::1", "comma-separated IP addresses"],
    ["out-bind", "[::1]", "comma-separated IP addresses"],
    ["admin-bind", "localhost", "an IP address"],
    ["allow-clients", "127.0.0.0/33", "comma-separated IP addresses or CIDRs"],
    ["allow-clients", "127.0.0.0/008", "comma-separated IP addresses or CIDRs"],
    ["deny-destinations", "::1/0128", "comma-separated IP addresses or CIDRs and the word private"],
    ["allow-clients", "private", "comma-separated IP addresses or CIDRs"],
    ["allow-clients", "::1%lo", "comma-separated IP addresses or CIDRs"],
    ["deny-destinations", "private,example.com", "comma-separated IP addresses or CIDRs and the word private"],
    ["deny-destinations", "Private", "comma-separated IP addresses or CIDRs and the word private"],
    ["max-connections", "0", "an integer 1-1000000"],
    ["max-connections", "1000001", "an integer 1-1000000"],
    ["connect-timeout", "10", "a duration such as 500ms, 10s, 2m, 1h or 1m30s"],
    ["connect-timeout", "0", "1ms to 596h"],
    ["connect-timeout", "-5s", "a duration"],
    ["idle-timeout", "597h", "1ms to 596h"],
    ["tunnel-idle-timeout", "1d", "a duration"],
    ["drain-delay", "soon", "0 to 596h"],
    ["grace-period", "0.5ms", "0 to 596h"],
    ["max-request-line", "8K", "a byte count such as 8192, 8KiB or 1MiB"],
    ["max-header-bytes", "0", "1 to 1024MiB"],
    ["max-header-bytes", "2048MiB", "1 to 1024MiB"],
    ["max-header-count", "1KiB", "an integer 1-100000"],
    ["max-buffered-bytes", "64 KiB", "a byte count"],
    ["log-level", "verbose", "silent, error, warn, info, debug, trace"],
    ["log-format", "text", "json, pretty"],
    ["ready-file", "", "a file path"],
    ["annotations", "", "a file path"],
  ];
  for (const [flag, text, allowed] of CASES) {
    const option = OPTIONS.find((o) => o.flag === flag);
    if (option === undefined) throw new Error(flag);
    test(`${flag} ${JSON.stringify(text)} (flag and env)`, () => {
      const fromFlag = errorOf({ flags: { [flag]: text } });
      expect(fromFlag).toStartWith(`invalid ${flag} ${JSON.stringify(text)} from flag --${flag}: `);
      expect(fromFlag).toContain(`; allowed: ${option.allowed}`);
      expect(fromFlag).toContain(allowed);
      if (text !== "") {
        const fromEnv = errorOf({ env: { [option.env]: text } });
        expect(fromEnv).toStartWith(`invalid ${flag} ${JSON.stringify(text)} from env ${option.env}: `);
      }
    });
  }

  test("from an annotation: the message names the annotation key and the file", () => {
    const files = { [ANN]: `${A}proxyPort="80x"` };
    expect(errorOf({ flags: { annotations: ANN }, files })).toBe(
      `invalid proxy-port "80x" from annotation ${A}proxyPort in ${ANN}: not a whole number; allowed: an integer 1-65535`,
    );
  });

  test("control characters and long values are quoted on one line, cut", () => {
    const message = errorOf({ files: { [ANN]: `${A}proxy-host="a\\nb\\u2028c"` }, flags: { annotations: ANN } });
    expect(message).toContain(String.raw`"a\nb\u2028c"`);
    const long = errorOf({ flags: { "proxy-host": "x".repeat(1000) + " y" } });
    expect(long.length).toBeLessThan(400);
    expect(long).toContain("(1002 characters)");
  });

  test("a boolean for a string option, an unknown option", () => {
    expect(errorOf({ flags: { "proxy-port": true } })).toContain("option --proxy-port needs a value");
    expect(errorOf({ flags: { "proxy-prot": "80" } })).toContain("unknown option --proxy-prot");
  });

  test("an unreadable annotations file", () => {
    expect(errorOf({ flags: { annotations: "/nope" } })).toBe(
      `cannot read annotations file "/nope" (from flag --annotations): ENOENT: no such file or directory, open '/nope'`,
    );
    expect(errorOf({ env: { SIDECAR_ANNOTATIONS_FILE: "/nope" } })).toContain("(from env SIDECAR_ANNOTATIONS_FILE)");
  });

  test("a malformed annotations file names the file and line", () => {
    const files = { [ANN]: `a="1"\n\n${A}proxy-port=80` };
    expect(errorOf({ flags: { annotations: ANN }, files })).toBe(
      `annotations file "${ANN}" (from flag --annotations), line 3: value of "${A}proxy-port" is not a double-quoted string`,
    );
  });
});

describe("combinations with no effect or a loop are refused", () => {
  test("auth that no listener asks for (reverse tcp, reverse http): refused, naming both", () => {
    for (const protocol of ["tcp", "http"]) {
      expect(errorOf({ flags: { "proxy-type": "reverse", "proxy-protocol": protocol, auth: "alice:pw" } })).toBe(
        `auth (from flag --auth) has no effect with proxy-type "reverse" from flag --proxy-type and a reverse ${protocol} listener: ` +
          "no listener would ask for it; allowed: auth with a forward listener (forward, dual) or reverse socks, or no auth",
      );
    }
    expect(errorOf({ flags: { "proxy-type": "reverse", "proxy-protocol": "tcp", "auth-file": "/f" }, files: { "/f": "a:b" } })).toContain("auth (from flag --auth-file) has no effect");
    // Where a listener asks: accepted.
    for (const [type, protocol] of [["reverse", "socks"], ["forward", "http"], ["dual", "tcp:http"], ["dual", "tcp:socks"]]) {
      expect(resolve({ flags: { "proxy-type": type, "proxy-protocol": protocol, auth: "alice:pw" } }).config.auth?.username).toBe("alice");
    }
  });

  test("a workload that is the reverse listener itself (same port, a bound loopback address): refused", () => {
    expect(errorOf({ flags: { "proxy-port": "4143" } })).toBe(
      `proxy-host "localhost" from default and proxy-port "4143" from flag --proxy-port name the reverse listener itself (proxy-in-port "4143" from default, in-bind "0.0.0.0,::" from default): ` +
        "every connection would loop back into the proxy; allowed: the workload's own address and port",
    );
    expect(errorOf({ flags: { "proxy-host": "127.0.0.2", "proxy-port": "5000", "proxy-in-port": "5000", "in-bind": "127.0.0.2" } })).toContain("name the reverse listener itself");
    expect(errorOf({ flags: { "proxy-host": "::1", "proxy-port": "5000", "proxy-in-port": "5000", "in-bind": "::" } })).toContain("name the reverse listener itself");
    // Another address on a specific bind, another port, a forward-only setup, a name: accepted.
    expect(() => resolve({ flags: { "proxy-host": "127.0.0.2", "proxy-port": "5000", "proxy-in-port": "5000", "in-bind": "127.0.0.1" } })).not.toThrow();
    expect(() => resolve({ flags: { "proxy-port": "4144" } })).not.toThrow();
    expect(() => resolve({ flags: { "proxy-type": "forward", "proxy-port": "4143" } })).not.toThrow();
    expect(() => resolve({ flags: { "proxy-host": "workload", "proxy-port": "4143" } })).not.toThrow();
    // With the wildcard default, another address may be another host (only loopback is sure);
    // an IPv4-mapped loopback literal is loopback. (Pure: nothing is dialled; RFC 5737 / RFC 3849
    // documentation addresses.)
    expect(() => resolve({ flags: { "proxy-host": "192.0.2.10", "proxy-port": "4143" } })).not.toThrow();
    expect(() => resolve({ flags: { "proxy-host": "2001:db8::10", "proxy-port": "4143" } })).not.toThrow();
    expect(errorOf({ flags: { "proxy-host": "::ffff:127.0.0.1", "proxy-port": "5000", "proxy-in-port": "5000", "in-bind": "127.0.0.1" } })).toContain("name the reverse listener itself");
  });

  test("a workload that is the forward listener (an open relay) or the admin endpoint: refused too", () => {
    expect(errorOf({ flags: { "proxy-protocol": "tcp:socks", "proxy-port": "4140" } })).toBe(
      `proxy-host "localhost" from default and proxy-port "4140" from flag --proxy-port name the forward listener (proxy-out-port "4140" from default, out-bind "127.0.0.1,::1" from default): ` +
        "every client of the reverse listener could reach any destination through it (an open relay); allowed: the workload's own address and port",
    );
    expect(errorOf({ flags: { "proxy-host": "127.0.0.1", "proxy-port": "4100" } })).toContain("name the admin endpoint (admin-port");
    expect(errorOf({ flags: { "proxy-host": "::1", "proxy-port": "5140", "proxy-out-port": "5140" } })).toContain("name the forward listener");
    // Not bound there, no forward listener, no admin endpoint: accepted.
    expect(() => resolve({ flags: { "proxy-host": "127.0.0.2", "proxy-port": "4140" } })).not.toThrow();
    expect(() => resolve({ flags: { "proxy-type": "reverse", "proxy-protocol": "tcp", "proxy-port": "4140" } })).not.toThrow();
    expect(() => resolve({ flags: { "no-admin": true, "proxy-port": "4100" } })).not.toThrow();
  });

  test("judged as the dial reaches it: the unspecified address, mapped IPv4 in any spelling, names under .localhost", () => {
    // The unspecified address is dialled as loopback (address.ts dialledAddress): the default wildcard binds take it.
    for (const host of ["0.0.0.0", "::", "::ffff:0.0.0.0", "0:0:0:0:0:0:0:0", "x.localhost", "A.LocalHost."]) {
      expect(errorOf({ flags: { "proxy-host": host, "proxy-port": "4143" } }), host).toContain("name the reverse listener itself");
    }
    for (const host of ["::ffff:7f00:1", "0:0:0:0:0:ffff:127.0.0.1", "::FFFF:7F00:0001"]) {
      expect(errorOf({ flags: { "proxy-host": host, "proxy-port": "5000", "proxy-in-port": "5000", "in-bind": "127.0.0.1" } }), host).toContain("name the reverse listener itself");
      expect(errorOf({ flags: { "proxy-host": host, "proxy-port": "4143" } }), host).toContain("name the reverse listener itself");
    }
    // Mapped, but another address than the one bound: accepted.
    expect(() => resolve({ flags: { "proxy-host": "::ffff:7f00:2", "proxy-port": "5000", "proxy-in-port": "5000", "in-bind": "127.0.0.1" } })).not.toThrow();
  });
});

describe("Kubernetes service links", () => {
  // A Service named sidecar-proxy gives every container of its namespace these variables.
  const LINKS = {
    SIDECAR_PROXY_SERVICE_HOST: "127.0.0.1",
    SIDECAR_PROXY_SERVICE_PORT: "4140",
    SIDECAR_PROXY_PORT: "tcp://127.0.0.1:4140",
    SIDECAR_PROXY_PORT_4140_TCP: "tcp://127.0.0.1:4140",
    SIDECAR_ADMIN_SERVICE_HOST: "127.0.0.1",
    SIDECAR_ADMIN_PORT: "tcp://127.0.0.1:4100",
  };

  test("a <SERVICE>_PORT=tcp://IP:PORT next to its _SERVICE_HOST is ignored with a warning; the annotation then applies", () => {
    const { config, sources, warnings } = resolve({ env: LINKS, flags: { annotations: ANN }, files: { [ANN]: `${A}proxy-port="8080"` } });
    expect(config.proxyPort).toBe(8080);
    expect(sources.proxyPort?.source).toBe("annotation");
    expect(config.adminPort).toBe(4100);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toBe(
      `env SIDECAR_PROXY_PORT="tcp://127.0.0.1:4140" ignored: it is the Kubernetes service link of Service "sidecar-proxy" (SIDECAR_PROXY_SERVICE_HOST is set), not a setting; set enableServiceLinks: false in the pod spec, or rename the Service`,
    );
  });

  test("the other service-link variables are not reported as unknown SIDECAR_* names", () => {
    const env = { ...LINKS, SIDECAR_PROXY_PORT_4140_TCP_PROTO: "tcp", SIDECAR_PROXY_PORT_4140_TCP_PORT: "4140", SIDECAR_PROXY_PORT_4140_TCP_ADDR: "127.0.0.1" };
    expect(resolve({ env }).warnings.filter((w) => w.includes("not a setting of"))).toEqual([]);
  });

  test("without _SERVICE_HOST, or with a plain port, the variable is a setting as before", () => {
    expect(errorOf({ env: { SIDECAR_PROXY_PORT: "tcp://127.0.0.1:4140" } })).toContain(`invalid proxy-port "tcp://127.0.0.1:4140" from env SIDECAR_PROXY_PORT`);
    const { config, warnings } = resolve({ env: { SIDECAR_PROXY_SERVICE_HOST: "127.0.0.1", SIDECAR_PROXY_PORT: "8081" } });
    expect(config.proxyPort).toBe(8081);
    expect(warnings).toEqual([]);
  });
});

describe("unknown SIDECAR_* variables", () => {
  test("are named in a warning (a typo would otherwise do nothing); known ones are not", () => {
    // SIDECAR_IN_PORT has a service link's shape, but no SIDECAR_IN_SERVICE_HOST: a typo.
    const { warnings } = resolve({ env: { SIDECAR_PROXY_PORTS: "8080", SIDECAR_ANNOTATIONS: "/f", SIDECAR_IN_PORT: "8080", SIDECAR_PROXY_HOST: "127.0.0.1", OTHER_VAR: "x" } });
    expect(warnings).toEqual([
      "env SIDECAR_ANNOTATIONS is not a setting of sidecar-proxy and is ignored (see --help for the SIDECAR_* names)",
      "env SIDECAR_IN_PORT is not a setting of sidecar-proxy and is ignored (see --help for the SIDECAR_* names)",
      "env SIDECAR_PROXY_PORTS is not a setting of sidecar-proxy and is ignored (see --help for the SIDECAR_* names)",
    ]);
  });
});

describe("misspelt sidecar.speedscale.com/* annotations", () => {
  test("are named in a warning with the key they are close to; the operator's own keys and exact keys are not", () => {
    const file = annotationsFile({
      "sidecar.speedscale.com/proxy-prot": "tcp",
      "sidecar.speedscale.com/proxy_port": "8080",
      "sidecar.speedscale.com/proxyTyp": "reverse",
      "sidecar.speedscale.com/porxy-port": "8080",
      "sidecar.speedscale.com/Proxy-Host": "127.0.0.1",
      "sidecar.speedscale.com/inject": "true",
      "sidecar.speedscale.com/tls-out": "true",
      "sidecar.speedscale.com/proxy-type": "reverse",
      "sidecar.speedscale.com/proxyInPort": "4143",
      // Keys that go on past a setting's name are other keys, not typos.
      "sidecar.speedscale.com/proxy-port-number": "1",
      "sidecar.speedscale.com/proxy-protocol-v2": "1",
      "sidecar.speedscale.com/proxy-hostport": "1",
      "team.example.com/proxy-port": "1",
    });
    const { config, warnings } = resolve({ flags: { annotations: "/a" }, files: { "/a": file } });
    expect(config.proxyPort).toBe(80); // nothing is guessed: the typo stays ignored
    expect(warnings).toEqual([
      "annotation sidecar.speedscale.com/proxy-prot in /a is not a setting of sidecar-proxy and is ignored; did you mean sidecar.speedscale.com/proxy-protocol?",
      "annotation sidecar.speedscale.com/proxy_port in /a is not a setting of sidecar-proxy and is ignored; did you mean sidecar.speedscale.com/proxy-port?",
      "annotation sidecar.speedscale.com/proxyTyp in /a is not a setting of sidecar-proxy and is ignored; did you mean sidecar.speedscale.com/proxy-type?",
      "annotation sidecar.speedscale.com/porxy-port in /a is not a setting of sidecar-proxy and is ignored; did you mean sidecar.speedscale.com/proxy-port?",
      "annotation sidecar.speedscale.com/Proxy-Host in /a is not a setting of sidecar-proxy and is ignored; did you mean sidecar.speedscale.com/proxy-host?",
    ]);
  });
});

describe("CIDR lists: what the configuration accepts, the matcher (lib/policy.ts) accepts", () => {
  // A value `config` passes must not stop the proxy at start-up: "/008" once passed the check
  // and then threw in the matcher (exit 1 with a stack trace instead of exit 2).
  const TEXTS = ["127.0.0.0/8", "127.0.0.0/008", "127.0.0.0/08", "127.0.0.1/032", "127.0.0.1/32", "127.0.0.1/0", "127.0.0.1/00",
    "::1/128", "::1/0128", "::1/064", "::/0", "::ffff:127.0.0.1/128", "::ffff:127.0.0.0/104", "127.0.0.1", "::1", "127.0.0.1/+8", "127.0.0.1/ 8"];
  const PLAIN = ["127.0.0.0/8", "127.0.0.1/32", "127.0.0.1/0", "::1/128", "::/0", "::ffff:127.0.0.1/128", "::ffff:127.0.0.0/104", "127.0.0.1", "::1"];
  for (const text of TEXTS) {
    test(text, () => {
      let accepted = true;
      try {
        resolve({ flags: { "allow-clients": text } });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        accepted = false;
      }
      if (accepted) expect(() => createMatcher([text])).not.toThrow();
      // The plainly valid spellings must be accepted, not only be consistent.
      if (PLAIN.includes(text)) expect(accepted).toBe(true);
    });
  }
});

describe("annotations file", () => {
  test("kubelet format: unknown keys ignored, blank lines and CRLF ok", () => {
    const text = [
      `kubernetes.io/config.seen="2024-01-01T00:00:00Z"`,
      "",
      `${A}proxy-port="8080"\r`,
      `other.example/json="{\\"a\\":[1,2]}"`,
      "   ",
      `${A}proxy-type="reverse"`,
      "",
    ].join("\n");
    const map = parseAnnotations(text);
    expect(map.get(`${A}proxy-port`)).toBe("8080");
    expect(map.get("other.example/json")).toBe('{"a":[1,2]}');
    const { config } = resolve({ flags: { annotations: ANN }, files: { [ANN]: text } });
    expect(config.proxyPort).toBe(8080);
    expect(config.proxyType).toBe("reverse");
  });

  // Values as Go's strconv.Quote writes them, and the strings they stand for.
  const VECTORS: Array<[string, string]> = [
    [`""`, ""],
    [`"plain"`, "plain"],
    [`"a\\"b"`, 'a"b'],
    [`"back\\\\slash"`, "back\\slash"],
    [`"\\a\\b\\f\\n\\r\\t\\v"`, "\x07\b\f\n\r\t\v"],
    [`"\\x41\\x7f"`, "A\x7f"],
    [`"\\xe2\\x82\\xac"`, "€"], // bytes of one UTF-8 character
    [`"\\xff"`, "\uFFFD"], // invalid UTF-8 byte
    [`"\\u20ac \\u00e9"`, "€ é"],
    [`"\\U0001f600"`, "😀"],
    [`"\\101\\060"`, "A0"],
    [`"\\377"`, "\uFFFD"],
    [`"héllo 😀"`, "héllo 😀"],
    [`"\\ufeffx"`, "\uFEFFx"],
    [`"tab\\there"`, "tab\there"],
  ];
  for (const [quoted, value] of VECTORS) {
    test(`unquote ${quoted}`, () => {
      expect(goUnquote(quoted)).toBe(value);
      expect(parseAnnotations(`k=${quoted}`).get("k")).toBe(value);
    });
  }

  const BAD = [`plain`, `"unterminated`, `'single'`, `"a"b"`, `"\\q"`, `"\\'"`, `"\\x4"`, `"\\xZZ"`, `"\\u12"`, `"\\ud800"`, `"\\U00110000"`, `"\\400"`, `"\\12"`, `"trailing\\"`, `"x" `];
  for (const quoted of BAD) {
    test(`reject ${quoted}`, () => {
      expect(() => goUnquote(quoted)).toThrow();
      expect(() => parseAnnotations(`k=${quoted}`)).toThrow(ConfigError);
    });
  }

  test("lines without key=, keys with spaces, duplicate keys are errors", () => {
    expect(() => parseAnnotations(`="x"`)).toThrow("line 1: expected key=");
    expect(() => parseAnnotations(`a b="x"`)).toThrow("line 1: expected key=");
    expect(() => parseAnnotations(`a="1"\na="2"`)).toThrow('line 2: key "a" appears twice');
  });

  test("canonical and legacy key: same value is fine, different values are an error", () => {
    const same = annotationsFile({ [`${A}proxy-port`]: "81", [`${A}proxyPort`]: "81" });
    const same2 = resolve({ flags: { annotations: ANN }, files: { [ANN]: same } });
    expect(same2.config.proxyPort).toBe(81);
    expect(same2.sources.proxyPort?.from).toBe(`annotation ${A}proxy-port in ${ANN}`);
    const differ = annotationsFile({ [`${A}proxy-port`]: "81", [`${A}proxyPort`]: "82" });
    expect(errorOf({ flags: { annotations: ANN }, files: { [ANN]: differ } })).toContain(
      `conflicting annotations ${A}proxy-port="81" and ${A}proxyPort="82" in ${ANN}`,
    );
  });

  test("an empty annotation value counts as unset, like an empty env var", () => {
    const { sources } = resolve({ flags: { annotations: ANN }, files: { [ANN]: `${A}proxy-port=""` } });
    expect(sources.proxyPort?.source).toBe("default");
  });

  test("legacy tcp+http / tcp+socks", () => {
    const files = { [ANN]: annotationsFile({ [`${A}proxyType`]: "dual", [`${A}proxyProtocol`]: "tcp+socks" }) };
    const { config } = resolve({ flags: { annotations: ANN }, files });
    expect([config.reverseProtocol, config.forwardProtocol]).toEqual(["tcp", "socks"]);
  });
});

describe("durations", () => {
  const OK: Array<[string, number]> = [
    ["0", 0],
    ["0s", 0],
    ["1ms", 1],
    ["500ms", 500],
    ["10s", 10_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1h2m3s4ms", 3_723_004],
    ["1.5s", 1_500],
    ["1.1s", 1_100],
    ["0.25h", 900_000],
    ["90m", 5_400_000],
  ];
  for (const [text, ms] of OK) test(`${text} = ${ms} ms`, () => expect(parseDuration(text)).toBe(ms));

  const BAD = ["", "10", "1.5", "-1s", "+1s", "1 s", " 1s", "1s ", "1d", "1us", "1ns", "s", "1.s", ".5s", "0.5ms", "1S", "1m30", "1e3ms", "9".repeat(400) + "h"];
  for (const text of BAD) test(`reject ${JSON.stringify(text)}`, () => expect(() => parseDuration(text)).toThrow("is not a duration"));

  test("formatDuration reads back", () => {
    for (const ms of [0, 1, 999, 1_000, 90_000, 3_600_000, 3_723_004, 596 * 3_600_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
    expect(formatDuration(3_600_000)).toBe("1h");
    expect(formatDuration(90_000)).toBe("1m30s");
  });
});

describe("auth", () => {
  const SECRET = "s3cr3t:PW";

  test("split at the first colon; the password may hold colons", () => {
    const { config, sources } = resolve({ flags: { auth: `alice:${SECRET}` } });
    expect(config.auth).toEqual({ username: "alice", password: SECRET });
    expect(sources.auth).toEqual({ value: { username: "alice", password: "***" }, source: "flag", from: "flag --auth" });
  });

  test("auth-file: a byte-order mark is not part of the user name", () => {
    expect(resolve({ flags: { "auth-file": "/f" }, files: { "/f": `\uFEFFbob:${SECRET}\n` } }).config.auth?.username).toBe("bob");
  });

  test("auth-file: trailing newline trimmed; env forms", () => {
    const files = { "/run/secret": `bob:${SECRET}\n`, "/run/crlf": `bob:${SECRET}\r\n` };
    expect(resolve({ flags: { "auth-file": "/run/secret" }, files }).config.auth).toEqual({ username: "bob", password: SECRET });
    expect(resolve({ env: { SIDECAR_AUTH_FILE: "/run/crlf" }, files }).config.auth?.password).toBe(SECRET);
    expect(resolve({ env: { SIDECAR_AUTH: `carol:${SECRET}` } }).config.auth?.username).toBe("carol");
  });

  test("--auth and --auth-file are one setting: the higher source wins, both at one level is an error", () => {
    const files = { "/f": "file:pw" };
    expect(resolve({ flags: { "auth-file": "/f" }, env: { SIDECAR_AUTH: "env:pw" }, files }).config.auth?.username).toBe("file");
    expect(resolve({ flags: { auth: "flag:pw" }, env: { SIDECAR_AUTH_FILE: "/f" }, files }).config.auth?.username).toBe("flag");
    expect(errorOf({ flags: { auth: `a:${SECRET}`, "auth-file": "/f" }, files })).toBe(
      "auth and auth-file are both given (flag --auth, flag --auth-file); allowed: one of them",
    );
  });

  test("255-byte limits (RFC 1929) count bytes, not characters", () => {
    expect(resolve({ flags: { auth: `${"u".repeat(255)}:${"p".repeat(255)}` } }).config.auth?.username).toHaveLength(255);
    expect(errorOf({ flags: { auth: `${"é".repeat(128)}:pw` } })).toContain("the user is longer than 255 bytes");
    expect(errorOf({ flags: { auth: `u:${"p".repeat(256)}` } })).toContain("the password is longer than 255 bytes");
  });

  const BAD: Array<[Input, string]> = [
    [{ flags: { auth: `:${SECRET}` } }, "invalid auth from flag --auth: the user is empty"],
    [{ flags: { auth: "alice:" } }, "invalid auth from flag --auth: the password is empty"],
    [{ flags: { auth: SECRET.replace(":", "") } }, "invalid auth from flag --auth: no colon between user and password"],
    [{ env: { SIDECAR_AUTH: `a:${SECRET}\nb:c` } }, "invalid auth from env SIDECAR_AUTH: more than one line"],
    [{ flags: { auth: `u:${SECRET}${"x".repeat(300)}` } }, "the password is longer than 255 bytes"],
    [{ flags: { "auth-file": "/f" }, files: { "/f": `:${SECRET}\n` } }, "invalid auth from flag --auth-file: the user is empty"],
    [{ flags: { "auth-file": "/f" }, files: { "/f": `a:${SECRET}\nb:${SECRET}\n` } }, "more than one line"],
    [{ flags: { "auth-file": "/missing" } }, `cannot read auth-file "/missing" (from flag --auth-file): ENOENT`],
  ];
  for (const [input, expected] of BAD) {
    test(`error without the password: ${expected}`, () => {
      const message = errorOf(input);
      expect(message).toContain(expected);
      expect(message).not.toContain("s3cr3t");
      expect(message).not.toContain("PW");
    });
  }

  test("the password is in no sources value", () => {
    const { sources } = resolve({ flags: { auth: `alice:${SECRET}` } });
    expect(JSON.stringify(sources)).not.toContain("s3cr3t");
  });
});

describe("admin", () => {
  test("--no-admin turns the endpoint off, from the flag or env 1/true", () => {
    for (const input of [{ flags: { "no-admin": true } }, { env: { SIDECAR_NO_ADMIN: "1" } }, { env: { SIDECAR_NO_ADMIN: "true" } }]) {
      const { config, sources } = resolve(input);
      expect(config.adminPort).toBeNull();
      expect(sources.adminPort?.value).toBeNull();
      expect(sources.adminPort?.source).not.toBe("default");
    }
    expect(resolve({ env: { SIDECAR_NO_ADMIN: "0" } }).config.adminPort).toBe(4100);
    expect(resolve({ env: { SIDECAR_NO_ADMIN: "false" }, flags: { "admin-port": "0" } }).config.adminPort).toBe(0);
  });

  test("bad boolean", () => {
    expect(errorOf({ env: { SIDECAR_NO_ADMIN: "yes" } })).toBe(
      `invalid no-admin "yes" from env SIDECAR_NO_ADMIN: not a boolean; allowed: true, false, 1, 0`,
    );
  });

  test("--admin-port and --no-admin are one setting: the higher source wins, both at one level is an error", () => {
    const off = resolve({ flags: { "no-admin": true }, env: { SIDECAR_ADMIN_PORT: "9000" } });
    expect(off.config.adminPort).toBeNull();
    expect(off.sources.adminPort).toEqual({ value: null, source: "flag", from: "flag --no-admin" });
    // The lower source is not read at all, as for --auth / --auth-file.
    expect(resolve({ flags: { "no-admin": true }, env: { SIDECAR_ADMIN_PORT: "http" } }).config.adminPort).toBeNull();

    const on = resolve({ flags: { "admin-port": "9000" }, env: { SIDECAR_NO_ADMIN: "1" } });
    expect(on.config.adminPort).toBe(9000);
    expect(on.sources.adminPort).toEqual({ value: 9000, source: "flag", from: "flag --admin-port" });

    expect(errorOf({ flags: { "no-admin": true, "admin-port": "9000" } })).toBe(
      `admin-port "9000" from flag --admin-port conflicts with no-admin from flag --no-admin; allowed: one of them`,
    );
    expect(errorOf({ env: { SIDECAR_NO_ADMIN: "true", SIDECAR_ADMIN_PORT: "9000" } })).toBe(
      `admin-port "9000" from env SIDECAR_ADMIN_PORT conflicts with no-admin from env SIDECAR_NO_ADMIN; allowed: one of them`,
    );
    // no-admin false is no conflict.
    expect(resolve({ env: { SIDECAR_NO_ADMIN: "0", SIDECAR_ADMIN_PORT: "9000" } }).config.adminPort).toBe(9000);
  });
});

describe("port collisions: two enabled listeners on one port with overlapping binds", () => {
  const COLLIDE: Array<[string, Record<string, string>, string[]]> = [
    ["in-port = out-port, default binds (0.0.0.0 covers 127.0.0.1)", { "proxy-in-port": "5000", "proxy-out-port": "5000" }, ["proxy-out-port", "proxy-in-port"]],
    ["the same address", { "in-bind": "127.0.0.1", "out-bind": "::1,127.0.0.1", "proxy-in-port": "5000", "proxy-out-port": "5000" }, ['out-bind "127.0.0.1"', 'in-bind "127.0.0.1"']],
    ["one IPv6 address written two ways", { "in-bind": "0:0::1", "out-bind": "::1", "proxy-in-port": "5000", "proxy-out-port": "5000" }, ['out-bind "::1"', 'in-bind "0:0::1"']],
    ["the IPv6 wildcard", { "in-bind": "::", "out-bind": "::1", "proxy-in-port": "5000", "proxy-out-port": "5000" }, ['out-bind "::1"', 'in-bind "::"']],
    ["admin-port = in-port", { "admin-port": "4143" }, ['admin-port "4143" from flag --admin-port', 'proxy-in-port "4143" from default']],
    ["admin-port = out-port", { "admin-port": "4140" }, ['admin-bind "127.0.0.1" from default overlaps out-bind "127.0.0.1" from default']],
  ];
  for (const [name, flags, parts] of COLLIDE) {
    test(`refused: ${name}`, () => {
      const message = errorOf({ flags });
      for (const part of parts) expect(message).toContain(part);
      expect(message).toContain("allowed: different ports (0 = any free port) or binds that do not overlap");
    });
  }

  test("the message names both keys, the values and their sources", () => {
    expect(errorOf({ flags: { "proxy-out-port": "5000" }, env: { SIDECAR_PROXY_IN_PORT: "5000", SIDECAR_OUT_BIND: "127.0.0.1" } })).toBe(
      `proxy-out-port "5000" from flag --proxy-out-port conflicts with proxy-in-port "5000" from env SIDECAR_PROXY_IN_PORT: ` +
        `out-bind "127.0.0.1" from env SIDECAR_OUT_BIND overlaps in-bind "0.0.0.0" from default; allowed: different ports (0 = any free port) or binds that do not overlap`,
    );
  });

  const ALLOWED: Array<[string, Record<string, string | boolean>]> = [
    ["port 0 everywhere", { "proxy-in-port": "0", "proxy-out-port": "0", "admin-port": "0" }],
    ["different addresses of one family", { "in-bind": "127.0.0.2", "out-bind": "127.0.0.1,::1", "proxy-in-port": "5000", "proxy-out-port": "5000" }],
    ["different families", { "in-bind": "::1", "out-bind": "127.0.0.1", "proxy-in-port": "5000", "proxy-out-port": "5000" }],
    // `::` is bound IPv6-only, as the default in-bind 0.0.0.0,:: on one port relies on.
    ["the IPv6 wildcard and an IPv4 address", { "in-bind": "::", "out-bind": "127.0.0.1", "proxy-in-port": "5000", "proxy-out-port": "5000" }],
    ["a listener that is not enabled (reverse: no forward listener)", { "proxy-type": "reverse", "proxy-in-port": "5000", "proxy-out-port": "5000" }],
    ["admin off", { "no-admin": true, "proxy-in-port": "5000" }],
    ["admin on another address", { "admin-port": "4140", "admin-bind": "127.0.0.2" }],
  ];
  for (const [name, flags] of ALLOWED) {
    test(`accepted: ${name}`, () => {
      expect(() => resolve({ flags })).not.toThrow();
    });
  }
});

describe("one listener's addresses must not overlap (they share one port)", () => {
  test("a wildcard and an address of its family: refused, even with port 0", () => {
    expect(errorOf({ flags: { "in-bind": "0.0.0.0,127.0.0.1", "proxy-in-port": "0" } })).toBe(
      `in-bind "0.0.0.0,127.0.0.1" from flag --in-bind: "127.0.0.1" overlaps "0.0.0.0", and a listener binds all its addresses on one port; ` +
        "allowed: addresses that do not overlap (0.0.0.0 already covers every IPv4 address, :: every IPv6 one)",
    );
    expect(errorOf({ env: { SIDECAR_OUT_BIND: "::1,::" } })).toContain(`out-bind "::1,::" from env SIDECAR_OUT_BIND: "::" overlaps "::1"`);
  });
  test("one IPv6 address written two ways: refused", () => {
    expect(errorOf({ flags: { "in-bind": "::1,0:0::1" } })).toContain(`"0:0::1" overlaps "::1"`);
    expect(errorOf({ flags: { "in-bind": "::1,0:0:0:0:0:0:0:1", "proxy-in-port": "0" } })).toContain(`"0:0:0:0:0:0:0:1" overlaps "::1"`);
    expect(errorOf({ flags: { "in-bind": "::,0:0::0" } })).toContain(`"0:0::0" overlaps "::"`);
  });
  test("IPv6 in mixed notation is compared, not thrown (URL refused it: a TypeError, exit 1)", () => {
    expect(errorOf({ flags: { "in-bind": "::7f00:1,0:0:0::127.0.0.1", "proxy-in-port": "0" } })).toContain(`"0:0:0::127.0.0.1" overlaps "::7f00:1"`);
    expect(() => resolve({ flags: { "in-bind": "::1,0:0:0::127.0.0.1", "proxy-in-port": "0" } })).not.toThrow();
  });
  test("an IPv4-mapped address cannot be bound (IPv6 listeners are IPv6-only): refused with the reason", () => {
    for (const text of ["::ffff:127.0.0.1", "0:0:0::ffff:127.0.0.1", "::FFFF:7f00:1"]) {
      expect(errorOf({ flags: { "in-bind": `::1,${text}`, "proxy-in-port": "0" } })).toContain("an IPv4-mapped address: write the IPv4 address");
    }
  });
  test("the default 0.0.0.0,:: and distinct addresses: accepted", () => {
    expect(() => resolve({})).not.toThrow();
    expect(() => resolve({ flags: { "in-bind": "127.0.0.1,127.0.0.2,::1", "out-bind": "::,127.0.0.1" } })).not.toThrow();
  });
});

describe("parseArgv", () => {
  test("commands, flags, --flag=value, boolean flags", () => {
    expect(parseArgv([])).toEqual({ command: "run", flags: {}, help: false });
    expect(parseArgv(["config", "--proxy-port", "81", "--auth=-a:b", "--no-admin"])).toEqual({
      command: "config",
      flags: { "proxy-port": "81", auth: "-a:b", "no-admin": true },
      help: false,
    });
    expect(parseArgv(["--in-bind=", "--proxy-host", "h"]).flags).toEqual({ "in-bind": "", "proxy-host": "h" });
  });

  test("--help / -h anywhere", () => {
    expect(parseArgv(["--bogus", "--help"])).toEqual({ command: "run", flags: {}, help: true });
    expect(parseArgv(["config", "-h"]).command).toBe("config");
  });

  const BAD: Array<[string[], string]> = [
    [["--proxy-prot", "80"], "unknown option --proxy-prot (see --help)"],
    [["--no-foo"], "unknown option --no-foo (see --help)"],
    [["--admin"], "unknown option --admin (see --help)"],
    [["--proxyPort", "80"], "unknown option --proxyPort (see --help)"],
    [["-p", "80"], "unknown option -p"],
    [["--auth=u:secret", "--auth=u:secret"], "option --auth is given more than once"],
    [["--proxy-port"], "option --proxy-port needs a value"],
    [["--auth", "--no-admin"], "option --auth needs a value"],
    [["--no-admin=false"], "option --no-admin takes no value"],
    [["start"], `unknown command "start"; commands: config`],
    [["config", "extra"], "unexpected argument #2"],
    [["--proxy-port", "80", "config"], "the command config must come first"],
    [["--", "--proxy-port", "80"], "unexpected argument #1"],
    [["--auth", "u", "secret"], "unexpected argument #3"],
  ];
  for (const [argv, expected] of BAD) {
    test(`reject ${argv.join(" ")}`, () => {
      expect(() => parseArgv(argv)).toThrow(ConfigError);
      expect(() => parseArgv(argv)).toThrow(expected);
      try {
        parseArgv(argv);
      } catch (err) {
        expect((err as Error).message).not.toContain("secret");
      }
    });
  }
});
