/**
 * Strict command-line parsing: `sidecar-proxy [config] [--flag VALUE | --flag=VALUE | --bool]...`.
 *
 * Why not citty's own parse: it runs node:util parseArgs with `strict: false` (unknown flags are
 * accepted silently, a missing value becomes ""), it strips every `--no-X` into `X: false`
 * (so `--no-admin` would arrive as `admin`, and `--no-anything` would vanish), and its
 * sub-command lookup drops flags written before the command name. A production CLI rejects all
 * of that, so argv is parsed here against OPTIONS and citty only renders help and runs commands.
 *
 * Rules: a flag appears at most once; a value starting with `-` must be attached with `=`
 * (`--auth=-x:y`), else it is taken for a missing value; no positional arguments besides the
 * command. Error messages never repeat a value (it could be a password).
 */
import { ConfigError } from "./error.ts";
import { optionByFlag } from "./options.ts";

export const COMMANDS = ["config"] as const;
export type Command = "run" | (typeof COMMANDS)[number];

export interface ParsedArgv {
  readonly command: Command;
  /** Flag name (no dashes) -> value; `true` for boolean flags. */
  readonly flags: Record<string, string | boolean>;
  /** `--help` or `-h` anywhere: show help for `command`, nothing else is checked. */
  readonly help: boolean;
}

export function parseArgv(argv: readonly string[]): ParsedArgv {
  let rest = argv;
  let command: Command = "run";
  const first = argv[0];
  if (first !== undefined && !first.startsWith("-")) {
    if (!(COMMANDS as readonly string[]).includes(first)) {
      throw new ConfigError(`unknown command ${JSON.stringify(first)}; commands: ${COMMANDS.join(", ")} (see --help)`);
    }
    command = first as Command;
    rest = argv.slice(1);
  }
  if (rest.includes("--help") || rest.includes("-h")) return { command, flags: {}, help: true };
  return { command, flags: parseFlags(rest, argv.length - rest.length), help: false };
}

function parseFlags(args: readonly string[], offset: number): Record<string, string | boolean> {
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if ((COMMANDS as readonly string[]).includes(arg)) {
      throw new ConfigError(`the command ${arg} must come first: sidecar-proxy ${arg} [flags]`);
    }
    if (!arg.startsWith("--") || arg === "--") {
      const what = arg.startsWith("-") && arg.length > 1 && arg !== "--" ? `unknown option ${arg.split("=")[0]}` : `unexpected argument #${offset + i + 1}`;
      throw new ConfigError(`${what}; options are --name VALUE or --name=VALUE (see --help)`);
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const option = optionByFlag(name);
    if (option === undefined) throw new ConfigError(`unknown option --${name} (see --help)`);
    if (name in flags) throw new ConfigError(`option --${name} is given more than once`);
    if (option.type === "boolean") {
      if (eq !== -1) throw new ConfigError(`option --${name} takes no value`);
      flags[name] = true;
      continue;
    }
    if (eq !== -1) {
      flags[name] = arg.slice(eq + 1);
      continue;
    }
    const next = args[i + 1];
    if (next === undefined || next.startsWith("-")) {
      throw new ConfigError(`option --${name} needs a value: --${name} ${option.valueHint ?? "VALUE"} (attach a value starting with "-" as --${name}=VALUE)`);
    }
    flags[name] = next;
    i++;
  }
  return flags;
}
