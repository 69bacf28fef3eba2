/**
 * The compiled binary in a distroless-like root (issue #6 item 2, SPEC §6 Delivery): a directory
 * holding only the binary, the libraries `ldd` lists and a mounted /proc (deploy/rootfs.sh) —
 * no /etc/hosts, no /etc/resolv.conf, no shell. The binary runs there under `chroot` (we are
 * root in CI; `unshare --user --map-root-user --root` is tried when chroot is refused) and real
 * requests go through it from outside: a raw TCP echo and curl through the reverse tcp listener,
 * curl through the forward HTTP listener (absolute-form and CONNECT).
 *
 * RUNTIME-NOTES: without /etc/hosts `Bun.dns.lookup("localhost")` fails; the dialler answers
 * "localhost" itself (RFC 6761 §6.3, lib/dial.ts resolveLocalhost). The default `--proxy-host localhost` and a forward request
 * to http://localhost:PORT/ prove that path here.
 *
 * The binary is $SIDECAR_PROXY_BIN, or else one built here from the working tree into the test's
 * temp dir (bounded; not dist/'s, which may be an older build).
 * Nothing here is skipped: without root, chroot or unshare the suite fails and says why.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ROOT } from "./helpers/proc.ts";
import { RawClient, echoServer, waitUntil } from "./helpers/net.ts";

const BUILD_TIMEOUT_MS = 180_000;
const RUN_TIMEOUT_MS = 20_000;
const ROOTFS_SH = join(ROOT, "deploy", "rootfs.sh");
const workdir = mkdtempSync(join(tmpdir(), "sidecar-proxy-distroless-"));
const BIN = process.env.SIDECAR_PROXY_BIN ?? join(workdir, "sidecar-proxy-linux-x64");

interface Ran {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killed after timeoutMs. */
async function run(cmd: string[], timeoutMs = RUN_TIMEOUT_MS, env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" }): Promise<Ran> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore", env });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr };
}

function describeRun(what: string, r: Ran): string {
  return `${what}: exit ${r.exitCode}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`;
}

/** curl from outside the root, with no proxy settings inherited from the environment. */
function curl(args: string[]): Promise<Ran> {
  return run(["curl", "-sS", "--max-time", "10", ...args], RUN_TIMEOUT_MS, { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir() });
}

const rootfs = join(workdir, "root");
let made = false;
/** How to enter the root: `chroot DIR` or the unshare fallback, chosen in beforeAll. */
let enter: string[] = [];
const procs = new Set<Bun.Subprocess>();

function cleanup(): void {
  for (const p of procs) p.kill("SIGKILL");
  procs.clear();
  if (made) {
    // Synchronous so it also runs from process.on("exit"): /proc must never stay mounted.
    const r = Bun.spawnSync(["bash", ROOTFS_SH, "clean", rootfs], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) console.error(`rootfs clean failed: ${r.stderr.toString()}`);
    else made = false;
  }
  rmSync(workdir, { recursive: true, force: true });
}
process.on("exit", cleanup);

beforeAll(async () => {
  if (process.env.SIDECAR_PROXY_BIN) {
    if (!existsSync(BIN)) throw new Error(`SIDECAR_PROXY_BIN=${BIN} does not exist`);
  } else {
    const b = await run([process.execPath, join(ROOT, "build.ts"), "linux-x64", "--outdir", workdir], BUILD_TIMEOUT_MS, { ...(process.env as Record<string, string>) });
    if (b.exitCode !== 0 || !existsSync(BIN)) throw new Error(describeRun("building the binary (bun build.ts linux-x64)", b));
  }
  const uid = process.getuid?.();
  const m = await run(["bash", ROOTFS_SH, "make", rootfs, BIN]);
  if (m.exitCode !== 0) throw new Error(`${describeRun(`deploy/rootfs.sh make (uid ${uid}; mounting /proc needs root)`, m)}`);
  made = true;
  // Which way into the root works here? `config` runs the whole CLI and exits 0.
  const attempts: string[] = [];
  // Absolute paths: the proxy is spawned with an empty environment (no PATH).
  const chroot = Bun.which("chroot") ?? "/usr/sbin/chroot";
  const unshare = Bun.which("unshare") ?? "/usr/bin/unshare";
  for (const prefix of [[chroot, rootfs], [unshare, "--user", "--map-root-user", `--root=${rootfs}`]]) {
    const r = await run([...prefix, "/sidecar-proxy", "config"]);
    if (r.exitCode === 0 && r.stdout.includes('"proxyType"')) {
      enter = prefix;
      return;
    }
    attempts.push(describeRun(prefix.join(" "), r));
  }
  throw new Error(`cannot run the binary in the root (uid ${uid}): neither chroot nor unshare works here\n${attempts.join("\n")}`);
}, BUILD_TIMEOUT_MS + 2 * RUN_TIMEOUT_MS);

afterAll(cleanup);

interface Chrooted {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  readonly ready: Record<string, Array<{ address: string; port: number }>>;
  output(): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

let readyN = 0;

/** Starts the binary in the root with OS-chosen loopback ports; ready once the ready file is written. */
async function startInRoot(args: string[]): Promise<Chrooted> {
  const readyName = `ready-${readyN++}.json`;
  const readyOnHost = join(rootfs, "tmp", readyName);
  const full = [...args, "--drain-delay", "0", "--admin-port", "0", "--log-format", "json", "--ready-file", `/tmp/${readyName}`];
  const proc = Bun.spawn([...enter, "/sidecar-proxy", ...full], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: {} });
  procs.add(proc);
  const out = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]).then(([stdout, stderr, exitCode]) => ({
    stdout,
    stderr,
    exitCode,
  }));
  try {
    await waitUntil(() => proc.exitCode !== null || (existsSync(readyOnHost) && statSync(readyOnHost).size > 0), RUN_TIMEOUT_MS, "the ready file");
  } catch (err) {
    proc.kill("SIGKILL");
    const o = await out;
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${o.stdout}\n${o.stderr}`);
  }
  if (proc.exitCode !== null) {
    const o = await out;
    throw new Error(`the proxy exited (${o.exitCode}) before it was ready:\n${o.stdout}\n${o.stderr}`);
  }
  const ready = JSON.parse(readFileSync(readyOnHost, "utf8")) as Chrooted["ready"];
  return { proc, ready, output: () => out };
}

async function stop(p: Chrooted): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  p.proc.kill("SIGTERM");
  const timer = setTimeout(() => p.proc.kill("SIGKILL"), RUN_TIMEOUT_MS);
  const o = await p.output();
  clearTimeout(timer);
  procs.delete(p.proc);
  return o;
}

function portOf(p: Chrooted, listener: "reverse" | "forward"): number {
  const port = p.ready[listener]?.[0]?.port;
  if (!port) throw new Error(`no ${listener} listener in ${JSON.stringify(p.ready)}`);
  return port;
}

/** An HTTP origin on loopback that names what it saw. */
function origin() {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => new Response(`origin saw ${req.method} ${new URL(req.url).pathname} host=${req.headers.get("host")}\n`),
  });
}

describe("compiled binary in a distroless-like root (chroot)", () => {
  test("the root holds only the binary, its libraries, /proc and /tmp: no /etc, no shell", () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, e.name);
        if (path === join(rootfs, "proc")) continue;
        if (e.isDirectory()) walk(path);
        else files.push(relative(rootfs, path));
      }
    };
    walk(rootfs);
    expect(files).toContain("sidecar-proxy");
    const others = files.filter((f) => f !== "sidecar-proxy" && !f.startsWith("tmp/"));
    expect(others.length).toBeGreaterThan(0);
    for (const f of others) expect(f).toMatch(/^(lib|lib64|usr\/lib)(32|64)?\/(.+\/)?(ld-linux[^/]*|lib[a-z_]+)\.so[.\d]*$/);
    expect(existsSync(join(rootfs, "etc"))).toBe(false);
    expect(existsSync(join(rootfs, "bin"))).toBe(false);
    expect(readdirSync(join(rootfs, "proc")).length).toBeGreaterThan(0); // mounted
  });

  test("reverse tcp to an echo server on 127.0.0.1: bytes round-trip, FIN passes through", async () => {
    const echo = echoServer("127.0.0.1");
    const p = await startInRoot(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(echo.port), "--proxy-in-port", "0", "--in-bind", "127.0.0.1"]);
    try {
      const c = await RawClient.connect(portOf(p, "reverse"));
      await c.write("hello from outside the chroot\n");
      await c.waitFor(() => c.text() === "hello from outside the chroot\n", 10_000, "the echo");
      c.halfClose();
      await c.waitFor(() => c.gotFin, 10_000, "the FIN from the echo server");
      c.close();
      const o = await stop(p);
      expect(o.exitCode).toBe(0);
      expect(o.stdout).toContain('"msg":"stopped"');
    } finally {
      p.proc.kill("SIGKILL");
      echo.stop();
    }
  });

  test("reverse tcp with the default --proxy-host localhost (no /etc/hosts): curl reaches the workload", async () => {
    const o = origin();
    const p = await startInRoot(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-port", String(o.port), "--proxy-in-port", "0", "--in-bind", "127.0.0.1"]);
    try {
      const r = await curl([`http://127.0.0.1:${portOf(p, "reverse")}/via-reverse`]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(`origin saw GET /via-reverse host=127.0.0.1:${portOf(p, "reverse")}\n`);
    } finally {
      p.proc.kill("SIGKILL");
      o.stop(true);
    }
  });

  test("forward http: curl -x through it, to 127.0.0.1 and to localhost (resolved without /etc/hosts), and CONNECT", async () => {
    const o = origin();
    const p = await startInRoot(["--proxy-type", "forward", "--proxy-protocol", "http", "--proxy-out-port", "0", "--out-bind", "127.0.0.1"]);
    try {
      const proxy = `http://127.0.0.1:${portOf(p, "forward")}`;
      const byIp = await curl(["-x", proxy, `http://127.0.0.1:${o.port}/by-ip`]);
      expect(byIp.stderr).toBe("");
      expect(byIp.stdout).toBe(`origin saw GET /by-ip host=127.0.0.1:${o.port}\n`);
      const byName = await curl(["-x", proxy, `http://localhost:${o.port}/by-name`]);
      expect(byName.stderr).toBe("");
      expect(byName.stdout).toBe(`origin saw GET /by-name host=localhost:${o.port}\n`);
      const tunnel = await curl(["-x", proxy, "--proxytunnel", `http://localhost:${o.port}/tunnel`]);
      expect(tunnel.stderr).toBe("");
      expect(tunnel.stdout).toBe(`origin saw GET /tunnel host=localhost:${o.port}\n`);
      const out = await stop(p);
      expect(out.exitCode).toBe(0);
      const stopped = out.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === "stopped");
      expect(stopped).toMatchObject({ connections: 3, errors: 0 });
    } finally {
      p.proc.kill("SIGKILL");
      o.stop(true);
    }
  });
});
