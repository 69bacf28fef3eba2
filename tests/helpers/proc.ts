/**
 * Spawning the proxy under test. By default the sources run under the Bun that runs the tests;
 * SIDECAR_PROXY_BIN=path runs a compiled binary instead, SIDECAR_PROXY_RUNTIME=deno runs the
 * sources under Deno. Every e2e test goes through here, so one suite covers all three.
 */
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..", "..");
export const PROXY_TS = join(ROOT, "proxy.ts");

export function proxyCommand(args: string[]): string[] {
  const bin = process.env.SIDECAR_PROXY_BIN;
  if (bin) return [bin, ...args];
  if (process.env.SIDECAR_PROXY_RUNTIME === "deno") {
    const deno = process.env.DENO_BIN ?? join(ROOT, "node_modules", ".bin", "deno");
    return [deno, "run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", PROXY_TS, ...args];
  }
  return [process.execPath, PROXY_TS, ...args];
}

/**
 * Environment for a spawned proxy: no inherited SIDECAR_* settings leak into tests. Deno's
 * daily upgrade check (a DNS query and HTTPS to dl.deno.land) is off: tests stay on loopback.
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { DENO_NO_UPDATE_CHECK: "1" };
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("SIDECAR_")) env[k] = v;
  }
  return { ...env, ...extra };
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the proxy to completion (for `config`, `--help` and start-up errors). Bounded by timeoutMs. */
export async function runProxyOnce(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<RunResult> {
  const proc = Bun.spawn(proxyCommand(args), { env: cleanEnv(env), stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr };
}
