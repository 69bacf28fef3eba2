/**
 * Picks the runtime adapter the process runs on. Each adapter is imported only when chosen, so
 * Bun never evaluates the Deno adapter and Deno never evaluates the Bun one (bun.ts relies on
 * the global `Bun`, deno.ts on the global `Deno`).
 */
import type { Runtime } from "./types.ts";

export async function loadRuntime(): Promise<Runtime> {
  if ("Deno" in globalThis) return (await import("./deno.ts")).denoRuntime;
  return (await import("./bun.ts")).bunRuntime;
}
