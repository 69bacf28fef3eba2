/**
 * A proxy process for end-to-end tests: spawned with JSON logs on loopback ports chosen by the
 * OS, ready once it logs "ready" (the ports come from that line), stopped with a signal.
 *
 * When a test times out, bun test sends SIGTERM to every child process still running ("killed 1
 * dangling process"), also one a file's beforeAll started and shares: that proxy then drains
 * (keep-alive connections close after their response) and later tests of the file fail for
 * reasons of their own. A hang in one test is the thing to fix first.
 */
import { readFileSync } from "node:fs";
import { closedPort } from "./net.ts";
import { cleanEnv, proxyCommand } from "./proc.ts";

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface RunningProxy {
  readonly pid: number;
  readonly ports: { reverse?: number; forward?: number; admin?: number };
  readonly logs: LogLine[];
  readonly exited: Promise<number>;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  signal(sig: "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGKILL"): void;
  stop(): Promise<number>;
  rssKiB(): number;
}

const running = new Set<RunningProxy>();

/** Kills every proxy a test file started (call from afterAll). */
export function killAll(): void {
  for (const p of running) p.signal("SIGKILL");
  running.clear();
}

function hasFlag(args: string[], ...names: string[]): boolean {
  return args.some((a) => names.some((n) => a === n || a.startsWith(`${n}=`)));
}

export interface StartOptions {
  /**
   * Shell commands run first (e.g. `ulimit -n 256`), then the proxy is `exec`ed by bash, so the
   * pid is still the proxy's own.
   */
  shell?: string;
  /** The command that runs the proxy with these arguments (default: proxyCommand; e.g. a binary under qemu). */
  command?: (args: string[]) => string[];
}

export async function startProxy(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000, options: StartOptions = {}): Promise<RunningProxy> {
  const full = [...args, "--log-format", "json"];
  if (!hasFlag(args, "--admin-port", "--no-admin")) full.push("--admin-port", "0");
  if (!hasFlag(args, "--proxy-in-port")) full.push("--proxy-in-port", "0");
  if (!hasFlag(args, "--proxy-out-port")) full.push("--proxy-out-port", "0");
  if (!hasFlag(args, "--in-bind")) full.push("--in-bind", "127.0.0.1");
  const run = (options.command ?? proxyCommand)(full);
  const command = options.shell === undefined ? run : ["bash", "-c", `${options.shell} || exit 97; exec "$@"`, "bash", ...run];
  const proc = Bun.spawn(command, { env: cleanEnv(env), stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const logs: LogLine[] = [];
  const waiters: Array<() => void> = [];
  let stderr = "";
  let done = false;
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of proc.stdout) {
      partial += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        try {
          logs.push(JSON.parse(line) as LogLine);
        } catch {
          logs.push({ level: "raw", msg: line });
        }
      }
      wake();
    }
  })();
  (async () => {
    stderr = await new Response(proc.stderr).text();
  })();
  const exited = proc.exited.then((code) => {
    done = true;
    wake();
    return code;
  });

  const waitForLog = (pred: (l: LogLine) => boolean, ms = 20_000, what = "log line"): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; logs:\n${logs.map((l) => JSON.stringify(l)).join("\n")}\n${stderr}`)), ms);
      const check = () => {
        const hit = logs.find(pred);
        if (hit) {
          clearTimeout(timer);
          return resolve(hit);
        }
        if (done) {
          clearTimeout(timer);
          return reject(new Error(`proxy exited while waiting for ${what}; logs:\n${logs.map((l) => JSON.stringify(l)).join("\n")}\n${stderr}`));
        }
        waiters.push(check);
      };
      check();
    });

  let ready: LogLine;
  try {
    ready = await waitForLog((l) => l.msg === "ready", timeoutMs, "ready");
  } catch (err) {
    proc.kill("SIGKILL"); // never leave a proxy behind that no test can reach
    throw err;
  }
  const listeners = ready.listeners as Record<string, Array<{ port: number }>>;
  const ports = {
    reverse: listeners.reverse?.[0]?.port,
    forward: listeners.forward?.[0]?.port,
    admin: listeners.admin?.[0]?.port,
  };
  const handle: RunningProxy = {
    pid: proc.pid,
    ports,
    logs,
    exited,
    waitForLog,
    signal: (sig) => {
      if (!done) proc.kill(sig);
    },
    stop: async () => {
      if (!done) proc.kill("SIGKILL");
      running.delete(handle);
      return exited;
    },
    rssKiB: () => {
      try {
        const status = readFileSync(`/proc/${proc.pid}/status`, "utf8");
        return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      } catch {
        return 0;
      }
    },
  };
  running.add(handle);
  return handle;
}

/**
 * A proxy that `start` starts with a workload port nobody listens on (net.ts closedPort). The OS
 * may hand the port just freed to one of the proxy's own port-0 listeners, whose workload is
 * then the proxy itself: the proxy refuses to start (lib/app.ts checkNotWorkload; before it,
 * each request looped back in until its head was too large, a 431 where a 502 was due, once in
 * CI), and it is started again with another port.
 */
export async function startWithClosedWorkload(start: (port: number) => Promise<RunningProxy>): Promise<RunningProxy> {
  for (let attempt = 1; ; attempt++) {
    const port = closedPort();
    try {
      return await start(port);
    } catch (err) {
      const given = err instanceof Error && err.message.includes(`was given port ${port} `);
      if (!given || attempt >= 5) throw err;
    }
  }
}
