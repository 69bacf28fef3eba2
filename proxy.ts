#!/usr/bin/env bun
/**
 * sidecar-proxy CLI: argv -> validated frozen Config -> runProxy (lib/app.ts).
 *
 *   sidecar-proxy [flags]          run the proxy
 *   sidecar-proxy config [flags]   print the effective configuration with the source of each value
 *
 * A configuration error prints one line `sidecar-proxy: <message>` on stderr and exits 2.
 * argv is parsed strictly by lib/config/argv.ts (citty's parse is lenient, see there); citty
 * defines the commands, renders --help from OPTIONS and runs the chosen command.
 * Portable: only process.* and node:fs, so the same file runs under Deno.
 */
import { readFileSync } from "node:fs";
import { type ArgsDef, type CommandDef, defineCommand, renderUsage, runCommand } from "citty";
import { ConfigError, OPTIONS, type ParsedArgv, type ResolvedConfig, parseArgv, resolveConfig } from "./lib/config.ts";

const NAME = "sidecar-proxy";

/** citty arg definitions, generated from the one option table. */
function argsFromOptions(): ArgsDef {
  const args: ArgsDef = {};
  for (const o of OPTIONS) {
    const where = [`env ${o.env}`, ...o.annotations.slice(0, 1).map((a) => `annotation ${a}`)].join(", ");
    const description = `${o.description} [${where}] (default: ${o.defaultHelp ?? o.default ?? "none"})`;
    args[o.flag] = o.type === "boolean" ? { type: "boolean", description } : { type: "string", description, valueHint: o.valueHint };
  }
  return args;
}

function resolve(flags: ParsedArgv["flags"]): ResolvedConfig {
  return resolveConfig({
    flags,
    env: process.env,
    readFile: (path) => readFileSync(path, "utf8"),
    stdoutIsTTY: process.stdout.isTTY === true,
  });
}

function commands(): { main: CommandDef; config: CommandDef } {
  const args = argsFromOptions();
  const config = defineCommand({
    meta: { name: "config", description: "Print the effective configuration as JSON, with the source of each value" },
    args,
    run: ({ data }) => {
      const { sources } = resolve((data as ParsedArgv).flags);
      process.stdout.write(`${JSON.stringify(sources, null, 2)}\n`);
    },
  });
  const main = defineCommand({
    meta: { name: NAME, description: "Inline reverse/forward proxy sidecar: TCP, HTTP/1.1, SOCKS4/4a/5" },
    args,
    subCommands: { config },
    run: async ({ data }) => {
      const { config: resolved } = resolve((data as ParsedArgv).flags);
      // Loaded only when the proxy really runs: `config` and `--help` stay cheap.
      const { runProxy } = await import("./lib/app.ts");
      await runProxy(resolved);
    },
  });
  return { main, config };
}

async function main(argv: readonly string[]): Promise<void> {
  try {
    const parsed = parseArgv(argv);
    const cmds = commands();
    const cmd = parsed.command === "config" ? cmds.config : cmds.main;
    if (parsed.help) {
      const usage = await renderUsage(cmd, parsed.command === "config" ? cmds.main : undefined);
      const text = (process.stdout.isTTY === true ? usage : usage.replace(/\x1b\[[0-9;]*m/g, "")).replace(/[ \t]+$/gm, "");
      process.stdout.write(`${text}\n`);
      return;
    }
    // rawArgs: [] so citty neither re-parses argv nor looks for sub-commands; the command
    // was chosen and its flags validated above.
    await runCommand(cmd, { rawArgs: [], data: parsed });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${NAME}: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    // A bug or a failure of the running proxy: exit even if sockets or timers are still open.
    process.stderr.write(`${NAME}: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`, () => process.exit(1));
  }
}

await main(process.argv.slice(2));
