/**
 * The soft RLIMIT_NOFILE, read from /proc/self/limits (Linux; node:fs works under Bun and Deno).
 * Undefined when unknown: no /proc, "unlimited", or Deno without --allow-all (it guards /proc/self).
 */
import { readFileSync } from "node:fs";

export function readFdLimit(): number | undefined {
  try {
    // "Max open files            1024                 1048576              files"
    const text = readFileSync("/proc/self/limits", "utf8");
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (!match || match[1] === "unlimited") return undefined;
    return Number(match[1]);
  } catch {
    return undefined;
  }
}
