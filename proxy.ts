#!/usr/bin/env bun
/**
 * sidecar-proxy CLI: argv -> validated frozen Config -> runProxy (lib/app.ts).
 *
 *   sidecar-proxy [flags]          run the proxy
 *   sidecar-proxy --version        print the release and the runtime
 *   sidecar-proxy config [flags]   print the effective configuration with the source of each value
 *   sidecar-proxy inject [-f FILE|-] [--image IMAGE] [--sidecar native|container] [--admin-bind ADDR] [--admin-port N]
 *                                  print a workload (JSON) with the sidecar added (lib/inject.ts)
 *
 * A configuration error prints one line `sidecar-proxy: <message>` on stderr and exits 2.
 * argv is parsed strictly by lib/config/argv.ts (citty's parse is lenient, see there); citty
 * defines the commands, renders --help from OPTIONS and runs the chosen command.
 * Portable: only process.* and node:fs, so the same file runs under Deno.
 */
import { fstatSync, readFileSync, statSync } from "node:fs";
import { type ArgsDef, type CommandDef, defineCommand, renderUsage, runCommand } from "citty";
import { ConfigError, OPTIONS, type ParsedArgv, type ResolvedConfig, parseArgv, resolveConfig } from "./lib/config.ts";
import { INJECT_FLAGS } from "./lib/config/argv.ts";
import { VERSION, runtimeVersion } from "./lib/version.ts";

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

/**
 * Whether stdout is a terminal, decided without touching process.stdout: under Bun its creation
 * loads the node:stream modules, ~8 ms of a compiled start (bench/RESULTS.md). A terminal is a
 * character device; /dev/null is one too and is told apart by its device number. (Another
 * character device, say /dev/zero, would count as a terminal: nobody logs there.)
 */
function stdoutIsTerminal(): boolean {
  try {
    const out = fstatSync(1);
    return out.isCharacterDevice() && out.rdev !== statSync("/dev/null").rdev;
  } catch {
    return false;
  }
}

function resolve(flags: ParsedArgv["flags"]): ResolvedConfig {
  return resolveConfig({
    flags,
    env: process.env,
    readFile: (path) => readFileSync(path, "utf8"),
    stdoutIsTTY: stdoutIsTerminal(),
  });
}

/** The manifest text for inject: a file, or stdin for `-`. */
async function readManifest(file: string): Promise<{ text: string; name: string }> {
  if (file !== "-") {
    try {
      return { text: readFileSync(file, "utf8"), name: file };
    } catch (err) {
      throw new ConfigError(`cannot read ${JSON.stringify(file)} (from flag --file): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (process.stdin.isTTY === true) throw new ConfigError("inject reads a workload as JSON from -f FILE or from stdin, and stdin is a terminal");
  // No Buffer: it is not a global under Deno.
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of process.stdin) text += typeof chunk === "string" ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
  return { text: text + decoder.decode(), name: "stdin" };
}

function injectCommand(): CommandDef {
  const args: ArgsDef = {};
  for (const f of INJECT_FLAGS) args[f.flag] = { type: "string", description: f.description, valueHint: f.valueHint, ...(f.short ? { alias: [f.short] } : {}) };
  return defineCommand({
    meta: {
      name: "inject",
      description:
        "Print a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod) with the sidecar added according to its pod template's sidecar.speedscale.com/* annotations. " +
        "Reads JSON only (no YAML): kubectl get deploy NAME -o json | sidecar-proxy inject | kubectl apply -f -",
    },
    args,
    run: async ({ data }) => {
      const flags = (data as ParsedArgv).flags;
      const { text, name } = await readManifest(typeof flags.file === "string" ? flags.file : "-");
      // Loaded only for this command: the proxy's start-up does not pay for it.
      const { inject, parseManifest } = await import("./lib/inject.ts");
      const str = (v: string | boolean | undefined) => (typeof v === "string" ? v : undefined);
      const warn = (message: string) => void process.stderr.write(`${NAME}: warning: ${message}\n`);
      const out = inject(parseManifest(text, name), { image: str(flags.image), sidecar: str(flags.sidecar), adminBind: str(flags["admin-bind"]), adminPort: str(flags["admin-port"]), warn });
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    },
  });
}

function commands(): { main: CommandDef; config: CommandDef; inject: CommandDef } {
  const args = argsFromOptions();
  const inject = injectCommand();
  const config = defineCommand({
    meta: { name: "config", description: "Print the effective configuration as JSON, with the source of each value" },
    args,
    run: ({ data }) => {
      const { sources, warnings } = resolve((data as ParsedArgv).flags);
      for (const w of warnings) process.stderr.write(`${NAME}: warning: ${w}\n`);
      process.stdout.write(`${JSON.stringify(sources, null, 2)}\n`);
    },
  });
  const main = defineCommand({
    // No meta.version: citty would print it after the description as "(sidecar-proxy v0.1.0)",
    // which reads as --version's output; --version is answered in main() below.
    meta: { name: NAME, description: "Inline reverse/forward proxy sidecar: TCP, HTTP/1.1, SOCKS4/4a/5; --version prints the release and the runtime under it" },
    args,
    subCommands: { config, inject },
    run: async ({ data }) => {
      const { config: resolved, warnings } = resolve((data as ParsedArgv).flags);
      // Loaded only when the proxy really runs: `config` and `--help` stay cheap.
      const { runProxy } = await import("./lib/app.ts");
      await runProxy(resolved, warnings);
    },
  });
  return { main, config, inject };
}

async function main(argv: readonly string[]): Promise<void> {
  try {
    const parsed = parseArgv(argv);
    if (parsed.version) {
      process.stdout.write(`${NAME} ${VERSION} (${runtimeVersion()}, ${process.platform} ${process.arch})\n`);
      return;
    }
    const cmds = commands();
    const cmd = parsed.command === "run" ? cmds.main : cmds[parsed.command];
    if (parsed.help) {
      const usage = await renderUsage(cmd, parsed.command === "run" ? undefined : cmds.main);
      const text = (stdoutIsTerminal() ? usage : usage.replace(/\x1b\[[0-9;]*m/g, "")).replace(/[ \t]+$/gm, "");
      process.stdout.write(`${text}\n`);
      return;
    }
    // rawArgs: [] so citty neither re-parses argv nor looks for sub-commands; the command
    // was chosen and its flags validated above. Its arg definitions serve --help only: without
    // them citty skips case-converting ~40 names per start (~1 ms, bench/RESULTS.md).
    await runCommand({ ...cmd, args: {} }, { rawArgs: [], data: parsed });
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
