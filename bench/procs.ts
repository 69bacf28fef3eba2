/**
 * Processes of a bench run: start a contestant from its config template, wait until it accepts,
 * stop it with its whole process tree. Every PID is appended to $BENCH_PIDFILE so bench/run.sh
 * can kill leftovers if this runner itself dies.
 */
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { join } from "node:path";

export type Vars = Record<string, string>;

/** `{{NAME}}` -> vars.NAME; an unknown name is a bug in the template. */
export function fill(template: string, vars: Vars): string {
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`template variable ${name} has no value`);
    return value;
  });
}

/** A free loopback port, chosen by the OS. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** One TCP connect attempt (closed at once). */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 500);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** PIDs of a process and all its descendants, from /proc. */
export function processTree(root: number): number[] {
  const parent = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = parent.get(ppid) ?? [];
      list.push(Number(entry));
      parent.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length && i < 10000; i++) out.push(...(parent.get(out[i]!) ?? []));
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const live = new Set<Bun.Subprocess>();

export interface Running {
  readonly pid: number;
  readonly port: number;
  readonly proc: Bun.Subprocess;
  readonly logPath: string;
}

export interface StartSpec {
  readonly id: string;
  readonly cmd: string[];
  readonly port: number;
  /** Where stdout and stderr go; /dev/null for peers that log every connection (microsocks). */
  readonly logPath: string;
  readonly readyTimeoutMs?: number;
}

export function track(proc: Bun.Subprocess): void {
  live.add(proc);
  const pidfile = process.env.BENCH_PIDFILE;
  if (pidfile) appendFileSync(pidfile, `${proc.pid}\n`);
  void proc.exited.then(() => live.delete(proc));
}

/** Start a contestant and wait (bounded) until its port accepts connections. */
export async function start(spec: StartSpec): Promise<Running> {
  const out = Bun.file(spec.logPath);
  const proc = Bun.spawn(spec.cmd, { stdout: out, stderr: out, stdin: "ignore" });
  track(proc);
  const deadline = Date.now() + (spec.readyTimeoutMs ?? 15000);
  let exited = false;
  void proc.exited.then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    if (await probe(spec.port)) return { pid: proc.pid, port: spec.port, proc, logPath: spec.logPath };
    await sleep(20);
  }
  await stop({ pid: proc.pid, port: spec.port, proc, logPath: spec.logPath });
  let log = "";
  try {
    log = readFileSync(spec.logPath, "utf8").slice(-600);
  } catch {
    // no log
  }
  throw new Error(`${spec.id} did not accept on 127.0.0.1:${spec.port} (${exited ? `exited ${proc.exitCode}` : "timeout"}): ${log}`);
}

/** SIGTERM the tree, wait up to 3 s for the root, then SIGKILL whatever of the tree is left. */
export async function stop(running: Running): Promise<void> {
  const tree = processTree(running.pid);
  for (const pid of tree) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  await Promise.race([running.proc.exited, sleep(3000)]);
  for (const pid of tree) if (alive(pid)) process.kill(pid, "SIGKILL");
  await Promise.race([running.proc.exited, sleep(1000)]);
  // Wait for the tree to be gone, so the next contestant does not share the CPU with it.
  for (let i = 0; i < 50 && tree.some(alive); i++) await sleep(20);
}

/** Kill everything still running (exit path). */
export function killAll(): void {
  for (const proc of live) {
    for (const pid of processTree(proc.pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/** Run a short command to completion (bounded) and return its stdout. */
export async function run(cmd: string[], opts: { timeoutMs: number; env?: Record<string, string> }): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, ...opts.env } });
  track(proc);
  const timer = setTimeout(() => {
    for (const pid of processTree(proc.pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }, opts.timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export function writeConfig(runDir: string, template: string, vars: Vars, name: string): string {
  const path = join(runDir, name);
  writeFileSync(path, fill(readFileSync(template, "utf8"), vars));
  return path;
}
