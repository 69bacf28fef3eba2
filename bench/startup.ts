/**
 * Start-up time: exec -> "accepting connections", for the compiled binary (or any command).
 *
 *   bun bench/startup.ts [-n 20] [BINARY ...]      default: dist/sidecar-proxy-linux-x64
 *   bun bench/startup.ts --sources                 `bun proxy.ts`, for comparison
 *
 * Each run spawns the proxy as a forward HTTP proxy on OS-chosen ports with `--ready-file`, polls
 * that file (it is written after every listener is bound, lib/app.ts), connects once to the
 * forward port it names to prove the listener accepts, then kills the process. Reported: the
 * median, min and max of the time from just before spawn to the accepted connection, in ms.
 * The first run is a warm-up (page cache) and is not counted.
 *
 * Polling is a 0.2 ms busy-sleep in this process, so the numbers include up to ~0.2 ms of poll
 * granularity and one loopback connect; they are meant for comparing builds on one machine.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const RUN_TIMEOUT_MS = 10_000;
const POLL_MS = 0.2;

function usage(): never {
  console.error("usage: bun bench/startup.ts [-n RUNS] [--sources | BINARY ...]");
  process.exit(2);
}

function parseArgs(argv: string[]): { runs: number; commands: string[][] } {
  let runs = 20;
  const commands: string[][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-n") {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs < 1) usage();
    } else if (a === "--sources") commands.push([process.execPath, join(ROOT, "proxy.ts")]);
    else if (a.startsWith("-")) usage();
    else commands.push([a]);
  }
  if (commands.length === 0) commands.push([join(ROOT, "dist", "sidecar-proxy-linux-x64")]);
  return { runs, commands };
}

function forwardPort(readyFile: string): number | null {
  try {
    if (statSync(readyFile).size === 0) return null;
    const ready = JSON.parse(readFileSync(readyFile, "utf8")) as { forward?: Array<{ port: number }> };
    return ready.forward?.[0]?.port ?? null;
  } catch {
    return null; // not there yet, or caught mid-write
  }
}

function connectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve();
    });
    s.on("error", reject);
  });
}

/** One start: ms from spawn to an accepted connection on the forward listener. */
async function startOnce(command: string[], dir: string, n: number): Promise<number> {
  const readyFile = join(dir, `ready-${n}.json`);
  rmSync(readyFile, { force: true }); // never poll a file left by an earlier command
  const args = ["--proxy-type", "forward", "--proxy-protocol", "http", "--proxy-out-port", "0", "--out-bind", "127.0.0.1"];
  args.push("--admin-port", "0", "--log-level", "silent", "--ready-file", readyFile);
  const started = performance.now();
  const proc = Bun.spawn([...command, ...args], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  try {
    let port: number | null = null;
    while ((port = forwardPort(readyFile)) === null) {
      if (proc.exitCode !== null) throw new Error(`exited with ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
      if (performance.now() - started > RUN_TIMEOUT_MS) throw new Error(`not ready within ${RUN_TIMEOUT_MS} ms`);
      Bun.sleepSync(POLL_MS);
    }
    await connectOnce(port);
    return performance.now() - started;
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

function summary(ms: number[]): { median: number; min: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

const { runs, commands } = parseArgs(process.argv.slice(2));
const dir = mkdtempSync(join(tmpdir(), "sidecar-proxy-startup-"));
try {
  for (const command of commands) {
    await startOnce(command, dir, -1); // warm-up
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await startOnce(command, dir, i));
    const { median, min, max } = summary(times);
    const label = command.map((c) => c.replace(`${ROOT}/`, "")).join(" ");
    let size = "";
    try {
      if (command.length === 1) size = `  size ${(statSync(command[0]!).size / 1024 / 1024).toFixed(1)} MiB`;
    } catch {}
    console.log(`${label}: start-up to accepting (n=${runs}) median ${median.toFixed(1)} ms, min ${min.toFixed(1)} ms, max ${max.toFixed(1)} ms${size}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
