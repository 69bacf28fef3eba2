/**
 * Machine description and bench/RESULTS.md upkeep for a bench run: what the numbers were taken
 * on (CPUs, kernel, versions, how busy the machine was), and the generated part of RESULTS.md
 * (between the markers; everything outside them is hand-written and kept).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";

function sh(cmd: string[]): string {
  try {
    const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
    return new TextDecoder().decode(r.stdout).trim();
  } catch {
    return "?";
  }
}

export function cpuBusy(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = line.reduce((a, b) => a + b, 0);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  return { busy: total - idle, total };
}

export function machine(sidecar: string, root: string): string[] {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  const mem = /MemTotal:\s*(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1];
  const pkgs = sh(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "microsocks", "dante-server", "tinyproxy", "squid", "haproxy", "nginx", "libnginx-mod-stream", "wrk"]);
  return [
    `- machine: ${cpus().length} CPUs (\`nproc\` ${sh(["nproc"])}), ${model}, ${mem ? (Number(mem) / 2 ** 20).toFixed(1) : "?"} GiB RAM, kernel ${release()}`,
    `- sidecar-proxy: ${sidecar}, Bun ${Bun.version}, commit ${sh(["git", "-C", root, "rev-parse", "--short", "HEAD"])} (plus any uncommitted changes)`,
    `- peers (Debian packages): ${pkgs.split("\n").join(", ")}`,
    `- load generator: bench/loadgen.c, ${sh(["cc", "--version"]).split("\n")[0]} -O2; wrk for http`,
  ];
}

const BEGIN = "<!-- BEGIN GENERATED: bench/run.sh rewrites this part on a full run -->";
const END = "<!-- END GENERATED -->";

export function updateResults(dir: string, md: string, log: (msg: string) => void): void {
  const path = join(dir, "RESULTS.md");
  const old = existsSync(path) ? readFileSync(path, "utf8") : `# Benchmark results (issue #7)\n\n${BEGIN}\n${END}\n`;
  const i = old.indexOf(BEGIN);
  const j = old.indexOf(END);
  const next = i >= 0 && j > i ? `${old.slice(0, i + BEGIN.length)}\n${md}\n${old.slice(j)}` : `${old}\n${BEGIN}\n${md}\n${END}\n`;
  writeFileSync(path, next);
  log(`updated ${path}`);
}
