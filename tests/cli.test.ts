/**
 * The real CLI, spawned (tests/helpers/proc.ts: sources under Bun, a compiled binary, or Deno).
 * Only `config`, `--help` and start-up errors: no proxy runs here (a bind failure is provoked on a
 * loopback port the test itself holds).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OPTIONS, type SourceEntry } from "../lib/config.ts";
import pkg from "../package.json" with { type: "json" };
import { cleanEnv, proxyCommand, runProxyOnce } from "./helpers/proc.ts";

const dir = mkdtempSync(join(tmpdir(), "sidecar-proxy-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function configOf(args: string[], env: Record<string, string> = {}): Promise<Record<string, SourceEntry>> {
  const r = await runProxyOnce(["config", ...args], env);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout) as Record<string, SourceEntry>;
}

describe("sidecar-proxy config", () => {
  test("prints every setting with its value and source", async () => {
    const sources = await configOf([]);
    for (const o of OPTIONS) expect(sources).toHaveProperty(o.key);
    expect(sources.proxyType).toEqual({ value: "dual", source: "default" });
    expect(sources.inBind).toEqual({ value: ["0.0.0.0", "::"], source: "default" });
    expect(sources.logFormat).toEqual({ value: "json", source: "default" }); // stdout is a pipe
    expect(sources.connectTimeoutMs).toEqual({ value: 10_000, source: "default" });
  });

  test("annotations file (legacy keys) < env < flag", async () => {
    const ann = file(
      "annotations",
      [
        `kubernetes.io/config.seen="2024-05-01T10:00:00.000000000Z"`,
        `sidecar.speedscale.com/inject="true"`,
        `sidecar.speedscale.com/proxyType="dual"`,
        `sidecar.speedscale.com/proxyProtocol="tcp+socks"`,
        `sidecar.speedscale.com/proxyHost="workload"`,
        `sidecar.speedscale.com/proxyPort="8080"`,
        `sidecar.speedscale.com/proxyInPort="5000"`,
        `sidecar.speedscale.com/proxy-out-port="5001"`,
      ].join("\n"),
    );
    const sources = await configOf(["--annotations", ann, "--proxy-in-port", "6000"], { SIDECAR_PROXY_PORT: "9090", SIDECAR_PROXY_HOST: "" });
    expect(sources.annotationsFile).toEqual({ value: ann, source: "flag", from: "flag --annotations" });
    expect(sources.proxyType).toEqual({ value: "dual", source: "annotation", from: `annotation sidecar.speedscale.com/proxyType in ${ann}` });
    expect(sources.reverseProtocol?.value).toBe("tcp");
    expect(sources.forwardProtocol?.value).toBe("socks");
    expect(sources.proxyHost).toMatchObject({ value: "workload", source: "annotation" }); // empty env = unset
    expect(sources.proxyPort).toEqual({ value: 9090, source: "env", from: "env SIDECAR_PROXY_PORT" });
    expect(sources.inPort).toEqual({ value: 6000, source: "flag", from: "flag --proxy-in-port" });
    expect(sources.outPort).toMatchObject({ value: 5001, source: "annotation" });
  });

  test("annotations file from SIDECAR_ANNOTATIONS_FILE", async () => {
    const ann = file("annotations-env", `sidecar.speedscale.com/proxy-type="reverse"\nsidecar.speedscale.com/proxy-protocol="tcp"\n`);
    const sources = await configOf([], { SIDECAR_ANNOTATIONS_FILE: ann });
    expect(sources.annotationsFile).toEqual({ value: ann, source: "env", from: "env SIDECAR_ANNOTATIONS_FILE" });
    expect(sources.reverseProtocol?.value).toBe("tcp");
    expect(sources.forwardProtocol?.value).toBeNull();
  });

  test("the password is masked, from the flag and from a file", async () => {
    const secret = file("auth", "alice:hunter2-secret\n");
    for (const args of [["--auth", "alice:hunter2-secret"], ["--auth-file", secret]]) {
      const r = await runProxyOnce(["config", ...args]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).not.toContain("hunter2");
      expect((JSON.parse(r.stdout) as Record<string, SourceEntry>).auth?.value).toEqual({ username: "alice", password: "***" });
    }
  });

  test("--no-admin over SIDECAR_ADMIN_PORT, and --admin-port over SIDECAR_NO_ADMIN: the flag wins", async () => {
    expect((await configOf(["--no-admin"], { SIDECAR_ADMIN_PORT: "5000" })).adminPort).toEqual({ value: null, source: "flag", from: "flag --no-admin" });
    expect((await configOf(["--admin-port", "5000"], { SIDECAR_NO_ADMIN: "1" })).adminPort).toEqual({ value: 5000, source: "flag", from: "flag --admin-port" });
  });

  test("--no-admin, durations and sizes", async () => {
    const sources = await configOf(["--no-admin", "--connect-timeout", "1m30s", "--max-header-bytes=60KiB"], { SIDECAR_GRACE_PERIOD: "0" });
    expect(sources.adminPort).toEqual({ value: null, source: "flag", from: "flag --no-admin" });
    expect(sources.connectTimeoutMs?.value).toBe(90_000);
    expect(sources.maxHeaderBytes?.value).toBe(61_440);
    expect(sources.gracePeriodMs).toEqual({ value: 0, source: "env", from: "env SIDECAR_GRACE_PERIOD" });
  });
});

describe("invalid configuration: exit 2, one line on stderr, nothing on stdout", () => {
  const unreadable = join(dir, "no-such-dir", "annotations");
  const badAnnotations = file("bad-annotations", `sidecar.speedscale.com/proxyPort="80x"\n`);
  const dirAsFile = mkdtempSync(join(dir, "d-"));
  const CASES: Array<{ name: string; args: string[]; env?: Record<string, string>; expect: string[] }> = [
    { name: "bad port (flag)", args: ["--proxy-port", "80x"], expect: ["proxy-port", `"80x"`, "flag --proxy-port", "1-65535"] },
    { name: "port 0 (env)", args: [], env: { SIDECAR_PROXY_PORT: "0" }, expect: ["proxy-port", `"0"`, "env SIDECAR_PROXY_PORT", "1-65535"] },
    { name: "port 65536", args: ["--proxy-out-port=65536"], expect: ["proxy-out-port", `"65536"`, "flag --proxy-out-port", "0-65535"] },
    {
      name: "bad port (annotation)",
      args: ["--annotations", badAnnotations],
      expect: ["proxy-port", `"80x"`, `annotation sidecar.speedscale.com/proxyPort in ${badAnnotations}`, "1-65535"],
    },
    {
      name: "tcp on forward",
      args: ["--proxy-type", "forward", "--proxy-protocol", "tcp"],
      expect: ["proxy-protocol", `"tcp"`, "flag --proxy-protocol", `proxy-type "forward"`, "allowed with forward: http, socks"],
    },
    {
      name: "tcp:http on reverse",
      args: ["--proxy-type", "reverse"],
      env: { SIDECAR_PROXY_PROTOCOL: "tcp:http" },
      expect: ["proxy-protocol", `"tcp:http"`, "env SIDECAR_PROXY_PROTOCOL", "allowed with reverse: tcp, http, socks"],
    },
    {
      name: "transparent",
      args: ["--proxy-type", "transparent"],
      expect: ["proxy-type", `"transparent"`, "flag --proxy-type", "transparent is not supported", "use reverse, forward or dual"],
    },
    { name: "unknown type", args: [], env: { SIDECAR_PROXY_TYPE: "sidecar" }, expect: ["proxy-type", `"sidecar"`, "env SIDECAR_PROXY_TYPE", "reverse, forward, dual"] },
    { name: "unknown protocol", args: ["--proxy-protocol", "udp"], expect: ["proxy-protocol", `"udp"`, "flag --proxy-protocol", "tcp, http, socks, tcp:http, tcp:socks"] },
    { name: "unreadable annotations file", args: ["--annotations", unreadable], expect: ["annotations file", unreadable, "flag --annotations"] },
    { name: "annotations file is a directory", args: [], env: { SIDECAR_ANNOTATIONS_FILE: dirAsFile }, expect: ["annotations file", dirAsFile, "env SIDECAR_ANNOTATIONS_FILE"] },
    { name: "unknown flag", args: ["--proxy-prot", "http"], expect: ["unknown option --proxy-prot"] },
    { name: "unknown negated flag", args: ["--no-such-thing"], expect: ["unknown option --no-such-thing"] },
    { name: "flag without value", args: ["--proxy-port"], expect: ["option --proxy-port needs a value"] },
    { name: "unknown command", args: ["serve"], expect: [`unknown command "serve"`] },
    { name: "bad duration", args: ["--idle-timeout", "60"], expect: ["idle-timeout", `"60"`, "flag --idle-timeout", "missing unit", "500ms, 10s"] },
    { name: "bad bind", args: [], env: { SIDECAR_IN_BIND: "0.0.0.0,localhost" }, expect: ["in-bind", "env SIDECAR_IN_BIND", `item "localhost"`] },
    { name: "bad auth", args: [], env: { SIDECAR_AUTH: ":hunter2" }, expect: ["auth", "env SIDECAR_AUTH", "the user is empty"] },
    {
      name: "colliding ports",
      args: ["--proxy-in-port", "47311", "--proxy-out-port", "47311"],
      expect: ["proxy-out-port", `"47311"`, "flag --proxy-out-port", "proxy-in-port", "flag --proxy-in-port", "overlaps", "allowed: different ports"],
    },
    { name: "admin port and no-admin, both flags", args: ["--admin-port", "5000", "--no-admin"], expect: ["admin-port", `"5000"`, "flag --admin-port", "conflicts with no-admin from flag --no-admin"] },
    { name: "admin port on a listener's port", args: ["--admin-port", "4140"], expect: ["admin-port", `"4140"`, "flag --admin-port", "proxy-out-port", "allowed: different ports"] },
  ];

  for (const c of CASES) {
    // `config serve` is an unexpected argument, not an unknown command.
    for (const command of c.name === "unknown command" ? [[]] : [[], ["config"]]) {
      test(`${c.name}${command.length > 0 ? " (config)" : ""}`, async () => {
        const r = await runProxyOnce([...command, ...c.args], c.env ?? {});
        expect(r.exitCode).toBe(2);
        expect(r.stdout).toBe("");
        const lines = r.stderr.split("\n");
        expect(lines).toHaveLength(2); // one line and its newline
        expect(lines[0]).toStartWith("sidecar-proxy: ");
        for (const part of c.expect) expect(lines[0]).toContain(part);
        expect(r.stderr).not.toContain("hunter2");
      });
    }
  }

  test("an unreadable auth file", async () => {
    const r = await runProxyOnce(["config", "--auth-file", join(dir, "missing")]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toStartWith(`sidecar-proxy: cannot read auth-file "${join(dir, "missing")}" (from flag --auth-file): `);
  });
});

describe("a listener that cannot bind: exit 1, one `cannot start` line naming it, its address and the OS reason", () => {
  const LISTENERS: Array<{ listener: string; args: (port: string) => string[] }> = [
    { listener: "reverse", args: (port) => ["--proxy-type", "reverse", "--in-bind", "127.0.0.1", "--proxy-in-port", port, "--no-admin"] },
    { listener: "forward", args: (port) => ["--proxy-type", "forward", "--out-bind", "127.0.0.1", "--proxy-out-port", port, "--no-admin"] },
    { listener: "admin", args: (port) => ["--proxy-type", "forward", "--out-bind", "127.0.0.1", "--proxy-out-port", "0", "--admin-port", port] },
  ];
  for (const { listener, args } of LISTENERS) {
    test(`${listener}: a port another process holds`, async () => {
      const held = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      try {
        const r = await runProxyOnce([...args(String(held.port)), "--log-format", "json"], {}, 10_000);
        expect(r.exitCode).toBe(1);
        const lines = r.stdout.split("\n").filter((l) => l.includes(`"cannot start"`));
        expect(lines).toHaveLength(1);
        expect(JSON.parse(lines[0] ?? "")).toMatchObject({
          msg: "cannot start",
          listener,
          address: "127.0.0.1",
          port: held.port,
          code: "EADDRINUSE",
          error: `${listener} listener cannot listen on 127.0.0.1:${held.port}: EADDRINUSE, address already in use`,
        });
      } finally {
        held.stop(true);
      }
    });
  }
});

describe("a Kubernetes service link in a setting's variable: ignored, with a warning", () => {
  const LINK = { SIDECAR_PROXY_SERVICE_HOST: "127.0.0.1", SIDECAR_PROXY_PORT: "tcp://127.0.0.1:4140" };
  const WARNING = `env SIDECAR_PROXY_PORT="tcp://127.0.0.1:4140" ignored: it is the Kubernetes service link of Service "sidecar-proxy"`;

  test("config: exit 0, the default in its place, the warning on stderr", async () => {
    const r = await runProxyOnce(["config"], LINK);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toStartWith(`sidecar-proxy: warning: ${WARNING}`);
    expect((JSON.parse(r.stdout) as Record<string, SourceEntry>).proxyPort).toEqual({ value: 80, source: "default" });
  });

  test("run: a `configuration` warn line before anything else", async () => {
    // A held port ends the run right after start-up: the lines before it are what is checked.
    const held = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const r = await runProxyOnce(["--proxy-type", "reverse", "--in-bind", "127.0.0.1", "--proxy-in-port", String(held.port), "--no-admin", "--log-format", "json"], LINK, 10_000);
      const first = JSON.parse(r.stdout.split("\n")[0] ?? "") as Record<string, unknown>;
      expect(first).toMatchObject({ level: "warn", msg: "configuration" });
      expect(String(first.detail)).toStartWith(WARNING);
    } finally {
      held.stop(true);
    }
  });
});

describe("a host without IPv6 (a network namespace with IPv6 disabled; root and unshare needed, as in CI)", () => {
  // `unshare -n` execs the command in place, so the spawned pid is the proxy's.
  const NO_IPV6 = 'ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1 && exec "$@"';
  async function runWithoutIPv6(args: string[]): Promise<{ lines: Array<Record<string, unknown>>; exitCode: number }> {
    const proc = Bun.spawn(["unshare", "-n", "sh", "-c", NO_IPV6, "sh", ...proxyCommand([...args, "--log-format", "json"])], {
      env: cleanEnv(),
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    const killer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
    const lines: Array<Record<string, unknown>> = [];
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) {
      text += decoder.decode(chunk, { stream: true });
      for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n")) {
        const line = JSON.parse(text.slice(0, nl)) as Record<string, unknown>;
        text = text.slice(nl + 1);
        lines.push(line);
        if (line.msg === "ready") proc.kill("SIGTERM");
      }
    }
    const exitCode = await proc.exited;
    clearTimeout(killer);
    if (lines.length === 0) throw new Error(`no log line: ${await new Response(proc.stderr).text()}`);
    return { lines, exitCode };
  }

  test("the default addresses: the IPv6 one that cannot bind is skipped with a warning; the rest serve", async () => {
    const { lines, exitCode } = await runWithoutIPv6(["--proxy-in-port", "0", "--proxy-out-port", "0", "--admin-port", "0", "--drain-delay", "0"]);
    expect(lines.filter((l) => l.msg === "IPv6 address skipped: IPv6 is not available on this host")).toEqual([
      expect.objectContaining({ level: "warn", listener: "forward", address: "::1", code: "EADDRNOTAVAIL" }),
    ]);
    const ready = lines.find((l) => l.msg === "ready") as { listeners: Record<string, Array<{ address: string }>> } | undefined;
    expect(ready?.listeners.forward?.map((a) => a.address)).toEqual(["127.0.0.1"]);
    expect(exitCode).toBe(0);
  }, 30_000);

  test("an IPv6 address the operator listed stays fatal: exit 1, cannot start", async () => {
    const { lines, exitCode } = await runWithoutIPv6(["--proxy-type", "forward", "--out-bind", "::1", "--proxy-out-port", "0", "--no-admin"]);
    expect(exitCode).toBe(1);
    expect(lines.find((l) => l.msg === "cannot start")).toMatchObject({ listener: "forward", address: "::1", code: "EADDRNOTAVAIL" });
  }, 30_000);
});

describe("--help", () => {
  for (const command of [[], ["config"]]) {
    test(`${["sidecar-proxy", ...command].join(" ")} --help lists every flag with its env name and default`, async () => {
      const r = await runProxyOnce([...command, "--help"]);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).not.toContain("\x1b["); // no colours into a pipe
      for (const o of OPTIONS) {
        const line = r.stdout.split("\n").find((l) => l.includes(`--${o.flag}${o.type === "boolean" ? " " : "="}`));
        expect(line).toBeDefined();
        expect(line).toContain(o.env);
        expect(line).toContain(`(default: ${o.defaultHelp ?? o.default})`);
      }
      if (command.length === 0) expect(r.stdout).toContain("config");
    });
  }

  test("-h wins over bad flags", async () => {
    const r = await runProxyOnce(["--bogus", "-h"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("--proxy-type");
  });
});

describe("--version", () => {
  const runtime = process.env.SIDECAR_PROXY_RUNTIME === "deno" ? "deno" : "bun";
  const expected = new RegExp(`\\(${runtime} \\d+\\.\\d+\\.\\d+, ${process.platform} ${process.arch}\\)$`);

  test("prints the release (package.json) and the runtime, exit 0; other flags are not checked", async () => {
    for (const args of [["--version"], ["--proxy-port", "99999", "--version"]]) {
      const r = await runProxyOnce(args);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe("");
      const line = r.stdout.trimEnd();
      expect(line.split("\n")).toHaveLength(1);
      expect(line.startsWith(`sidecar-proxy ${pkg.version} (`)).toBe(true);
      expect(line).toMatch(expected);
    }
  });

  test("is not an option of config or inject", async () => {
    const r = await runProxyOnce(["config", "--version"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("--version");
  });
});
