/**
 * Running real client programs (curl, Python, Go, Java) from end-to-end tests: a clean
 * environment (no *_PROXY / NO_PROXY from the machine), a hard timeout on every run, and a clear
 * failure naming the package to install when a client is missing (tests never skip silently).
 */
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./proc.ts";

/** Proxy variables that would silently change what a client does. */
const PROXY_VARS = ["NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy"];

/** The test process's environment without any proxy settings (and without SIDECAR_* values). */
export function clientEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || PROXY_VARS.includes(k) || k.startsWith("SIDECAR_")) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface ClientResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Bound on one client run (a Go or Java client may compile or start a JVM first; in CI the
 * slowest run takes under 2 s). Below CLIENT_TEST_MS, so a hung client fails its test with the
 * client's own output (describeRun), not the runner's bare timeout.
 */
export const CLIENT_TIMEOUT_MS = 45_000;

/**
 * Runs a client to completion; SIGKILLed after timeoutMs (timedOut = true). `input` is its whole
 * stdin (then end of file); without it stdin is closed.
 */
export async function runClient(
  cmd: string[],
  options: { timeoutMs?: number; env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<ClientResult> {
  const proc = Bun.spawn(cmd, {
    env: clientEnv(options.env),
    cwd: options.cwd,
    stdout: "pipe",
    stderr: "pipe",
    stdin: options.input === undefined ? "ignore" : Buffer.from(options.input, "latin1"),
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, options.timeoutMs ?? CLIENT_TIMEOUT_MS);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr, timedOut };
}

/** Describes a failed run for an assertion message. */
export function describeRun(cmd: string[], r: ClientResult): string {
  return `${cmd.join(" ")}\nexit ${r.exitCode}${r.timedOut ? " (timed out, killed)" : ""}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`;
}

/** Throws (failing the test) when a client program is not installed. */
export function requireTool(name: string, packageHint: string): string {
  const path = Bun.which(name);
  if (!path) throw new Error(`${name} is not installed: install ${packageHint} (CI installs it; these tests never skip)`);
  return path;
}

/** The system Python with requests + PySocks (the pyenv `python3` on PATH lacks them). */
export const SYSTEM_PYTHON = "/usr/bin/python3";

export function requirePythonModules(modules: string[], packageHint: string): void {
  const r = Bun.spawnSync([SYSTEM_PYTHON, "-c", `import ${modules.join(", ")}`], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: clientEnv() });
  if (r.exitCode !== 0) {
    throw new Error(`${SYSTEM_PYTHON} cannot import ${modules.join(", ")}: install ${packageHint} (${r.stderr.toString().trim()})`);
  }
}

/** GOCACHE/GOPATH shared by every test process (Go's cache is safe for concurrent builds). */
const GO_BASE = join(tmpdir(), "sidecar-proxy-tests-go");

/**
 * Builds a standard-library-only Go program (a single file, no module, no network) and returns the
 * binary's path (per process; removeGoBuilds() deletes it). Building once and running the binary per test
 * keeps each run fast; the first build on a cold cache can take a while, hence the generous
 * timeout. The shared cache makes later runs of the suite quick.
 */
export async function buildGoProgram(source: string, timeoutMs = 180_000): Promise<string> {
  requireTool("go", 'the "golang-go" package');
  const cache = join(GO_BASE, "cache");
  const gopath = join(GO_BASE, "gopath");
  mkdirSync(cache, { recursive: true });
  mkdirSync(gopath, { recursive: true });
  const out = join(GO_BASE, "bin", `${source.replace(/^.*\//, "").replace(/\.go$/, "")}-${process.pid}`);
  const cmd = ["go", "build", "-o", out, source];
  const r = await runClient(cmd, {
    timeoutMs,
    // GOPROXY=off / GOFLAGS empty: std lib only, never fetch anything.
    env: { GOCACHE: cache, GOPATH: gopath, GOFLAGS: "", GOPROXY: "off", GO111MODULE: "on", GOTOOLCHAIN: "local", CGO_ENABLED: "0" },
  });
  if (r.exitCode !== 0) throw new Error(`go build failed:\n${describeRun(cmd, r)}`);
  goBuilds.push(out);
  return out;
}

const goBuilds: string[] = [];

/** Deletes the binaries this process built (call from afterAll; the shared cache stays). */
export function removeGoBuilds(): void {
  for (const path of goBuilds.splice(0)) rmSync(path, { force: true });
}

/** The interop suites' client programs (Go, Python, Java, Node). */
export const INTEROP = join(ROOT, "tests", "interop");
/** Per-test timeouts of the interop suites: one client run / several client runs in a row. */
export const CLIENT_TEST_MS = 60_000;
export const CLIENTS_TEST_MS = 150_000;
/** What the interop suites download and upload through the proxy: 10 MiB. */
export const BIG_TRANSFER = 10 * 1024 * 1024;

/** Runs a client from the repository root and fails the test with its output unless it exits 0. */
export async function mustRun(cmd: string[], options: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {}): Promise<ClientResult> {
  const r = await runClient(cmd, { timeoutMs: options.timeoutMs ?? CLIENT_TIMEOUT_MS, env: options.env, cwd: ROOT, input: options.input });
  if (r.exitCode !== 0 || r.timedOut) throw new Error(`client failed:\n${describeRun(cmd, r)}`);
  return r;
}

/** What the interop programs (tests/interop/*) print as their last line. */
export interface ClientJson {
  status: number;
  bytes: number;
  sha256: string;
  xSha256: string;
  text: string;
  sentSha256?: string;
  proxy?: string;
}

export function parseJsonLine(cmd: string[], r: ClientResult): ClientJson {
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as ClientJson;
  } catch {
    throw new Error(`client printed no JSON:\n${describeRun(cmd, r)}`);
  }
}
