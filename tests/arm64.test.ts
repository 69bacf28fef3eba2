/**
 * The linux-arm64 binary (SPEC §6 Delivery: one executable per target), run on this x64 machine
 * under qemu-user with the arm64 glibc of Debian's cross packages: it starts, tells its
 * platform, proxies curl's SOCKS5 (a name) and SOCKS4 requests, an HTTP absolute-form GET and a
 * CONNECT to loopback origins and a reverse TCP tunnel, and exits 0 on SIGTERM. A Bun upgrade
 * whose arm64 runtime, or our bytecode for it, broke the binary fails here, not on a user's
 * Graviton node. Not named `.e2e`: it runs once, not again under the compiled x64 binary and Deno.
 *
 * Needs qemu-user and libc6-arm64-cross (.ci/run installs them). The binary is built here from
 * the working tree into a temp dir (about a second: Bun's arm64 runtime comes from its cache,
 * which .ci/run fills by building linux-arm64 first; on a fresh machine Bun fetches it from the
 * npm registry once). Nothing is skipped: without these the suite fails and names the package.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeRun, mustRun, requireTool, runClient } from "./helpers/clients.ts";
import { RawClient, echoServer, type TestServer } from "./helpers/net.ts";
import { HELLO, type Origin, httpOrigin } from "./helpers/origins.ts";
import { ROOT } from "./helpers/proc.ts";
import { type RunningProxy, killAll, startProxy } from "./helpers/proxy.ts";

const OUT = mkdtempSync(join(tmpdir(), "sidecar-proxy-arm64-"));
const BIN = join(OUT, "sidecar-proxy-linux-arm64");
/** Debian's libc6-arm64-cross: the arm64 loader and glibc, for qemu's -L. */
const SYSROOT = "/usr/aarch64-linux-gnu";
const BUILD_TIMEOUT_MS = 180_000;
/** Under emulation start-up takes about a second here; generous for a busy CI machine. */
const START_TIMEOUT_MS = 60_000;
const T = 90_000;

let qemu = "";
const underQemu = (args: string[]): string[] => [qemu, "-L", SYSROOT, BIN, ...args];

let origin: Origin;
let echo: TestServer;

beforeAll(async () => {
  qemu = requireTool("qemu-aarch64", 'the "qemu-user" package');
  if (!existsSync(join(SYSROOT, "lib", "ld-linux-aarch64.so.1"))) throw new Error(`${SYSROOT} has no arm64 loader: install the "libc6-arm64-cross" package`);
  // The build keeps this process's whole environment: runClient drops proxy settings unless
  // given back, and a machine behind an egress proxy needs them for Bun's one fetch of the runtime.
  const cmd = [process.execPath, join(ROOT, "build.ts"), "linux-arm64", "--outdir", OUT];
  const b = await runClient(cmd, { timeoutMs: BUILD_TIMEOUT_MS, cwd: ROOT, env: process.env as Record<string, string> });
  if (b.exitCode !== 0 || b.timedOut || !existsSync(BIN)) throw new Error(`building ${BIN} failed:\n${describeRun(cmd, b)}`);
  origin = httpOrigin();
  echo = echoServer();
}, BUILD_TIMEOUT_MS + 10_000);

afterAll(() => {
  killAll();
  origin?.stop();
  echo?.stop();
  rmSync(OUT, { recursive: true, force: true });
});

/** curl with nothing from the environment or ~/.curlrc. */
const curl = (args: string[]) => ["curl", "-q", "-sS", "--max-time", "30", ...args];

describe("linux-arm64 binary under qemu-aarch64", () => {
  test("--version names the arm64 runtime", async () => {
    const r = await mustRun(underQemu(["--version"]), { timeoutMs: START_TIMEOUT_MS });
    expect(r.stdout.trim()).toMatch(/^sidecar-proxy \d+\.\d+\.\d+ \(bun \d+\.\d+\.\d+, linux arm64\)$/);
  }, T);

  test("forward SOCKS: curl --socks5-hostname (localhost) and --socks4 reach the origin; SIGTERM exits 0", async () => {
    const p = await startProxy(["--proxy-type", "forward", "--proxy-protocol", "socks", "--out-bind", "127.0.0.1", "--drain-delay", "0"], {}, START_TIMEOUT_MS, { command: underQemu });
    const port = p.ports.forward!;
    const byName = await mustRun(curl(["--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${origin.port}/hello`]));
    expect(byName.stdout).toBe(HELLO);
    const v4 = await mustRun(curl(["--socks4", `127.0.0.1:${port}`, origin.url("/hello")]));
    expect(v4.stdout).toBe(HELLO);
    await expectStopped(p, 2);
  }, T);

  test("dual tcp:http: a reverse TCP tunnel echoes; forward absolute-form GET and CONNECT reach the origin", async () => {
    const p = await startProxy(
      ["--proxy-type", "dual", "--proxy-protocol", "tcp:http", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port), "--out-bind", "127.0.0.1", "--drain-delay", "0"],
      {},
      START_TIMEOUT_MS,
      { command: underQemu },
    );
    const c = await RawClient.connect(p.ports.reverse!);
    await c.write("through the arm64 binary");
    await c.waitFor(() => c.text() === "through the arm64 binary" || c.closed, 30_000, "the echo");
    expect(c.text()).toBe("through the arm64 binary");
    c.close();
    const proxy = `http://127.0.0.1:${p.ports.forward!}`;
    expect((await mustRun(curl(["-x", proxy, origin.url("/hello")]))).stdout).toBe(HELLO);
    expect((await mustRun(curl(["-p", "-x", proxy, origin.url("/hello")]))).stdout).toBe(HELLO);
    await expectStopped(p, 3);
  }, T);
});

/** SIGTERM: exit 0, and the last line is `stopped` with the connections it served. */
async function expectStopped(p: RunningProxy, connections: number): Promise<void> {
  p.signal("SIGTERM");
  expect(await p.exited).toBe(0);
  const last = p.logs.at(-1);
  expect(last?.msg).toBe("stopped");
  expect(last?.connections).toBe(connections);
}
