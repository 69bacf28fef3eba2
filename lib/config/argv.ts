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
 * (`--auth=-x:y`), else it is taken for a missing value (for inject a lone `-`, stdin, is a
 * value); no positional arguments besides the command. Error messages never repeat a value (it
 * could be a password).
 *
 * `inject` takes its own flags (INJECT_FLAGS), not the proxy's: it reads a manifest and prints
 * it; the proxy configuration comes from the manifest's annotations (lib/inject.ts).
 */
import { ConfigError } from "./error.ts";
import { optionByFlag } from "./options.ts";
import { RELEASE_IMAGE } from "../version.ts";

export const COMMANDS = ["config", "inject"] as const;
export type Command = "run" | (typeof COMMANDS)[number];

export interface CommandFlag {
  readonly flag: string;
  /** One-letter alias (`-f`), written as its own argument followed by the value. */
  readonly short?: string;
  readonly type: "string" | "boolean";
  readonly valueHint?: string;
  readonly description: string;
}

export const INJECT_FLAGS: readonly CommandFlag[] = Object.freeze([
  { flag: "file", short: "f", type: "string", valueHint: "FILE", description: "workload to read (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod, or a List of objects), as JSON (YAML is not read); - for stdin (default: -)" },
  { flag: "image", type: "string", valueHint: "IMAGE", description: `sidecar image (default: ${RELEASE_IMAGE}, this release's tag)` },
  {
    flag: "sidecar",
    type: "string",
    valueHint: "native|container",
    description: "native: the first init container with restartPolicy Always (Kubernetes 1.29+: up before the workload, stopped after it); container: a regular container (default: native)",
  },
  { flag: "admin-bind", type: "string", valueHint: "ADDR", description: "address of the sidecar's admin endpoint, which the kubelet probes on the pod IP (default: 0.0.0.0; :: on an IPv6-only cluster)" },
  { flag: "admin-port", type: "string", valueHint: "N", description: "port of the sidecar's admin endpoint and its probes, when the workload uses 4100 itself (default: 4100)" },
]);

type FlagLookup = (name: string) => Pick<CommandFlag, "type" | "valueHint"> | undefined;

interface FlagRules {
  readonly lookup: FlagLookup;
  /** Said after an unknown option. */
  readonly known: string;
  /** A lone `-` is a value (stdin) rather than a missing one. */
  readonly dashIsValue: boolean;
}

export interface ParsedArgv {
  readonly command: Command;
  /** Flag name (no dashes) -> value; `true` for boolean flags. */
  readonly flags: Record<string, string | boolean>;
  /** `--help` or `-h` anywhere: show help for `command`, nothing else is checked. */
  readonly help: boolean;
  /** `--version` anywhere (no command): print the version, nothing else is checked. */
  readonly version?: boolean;
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
  if (command === "run" && rest.includes("--version")) return { command, flags: {}, help: false, version: true };
  const offset = argv.length - rest.length;
  if (command === "inject") {
    const byFlag = new Map(INJECT_FLAGS.map((f) => [f.flag, f]));
    const shorts = new Map<string, string>(INJECT_FLAGS.flatMap((f) => (f.short ? [[`-${f.short}`, `--${f.flag}`] as const] : [])));
    // `-f X` is `--file X`; only as its own argument (no `-fX`, no `-f=X`).
    const long = rest.map((a) => shorts.get(a) ?? a);
    const rules = { lookup: (name: string) => byFlag.get(name), known: "inject takes -f/--file, --image, --sidecar", dashIsValue: true };
    return { command, flags: parseFlags(long, offset, rules), help: false };
  }
  return { command, flags: parseFlags(rest, offset, { lookup: optionByFlag, known: "see --help", dashIsValue: false }), help: false };
}

function parseFlags(args: readonly string[], offset: number, { lookup, known, dashIsValue }: FlagRules): Record<string, string | boolean> {
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if ((COMMANDS as readonly string[]).includes(arg)) {
      throw new ConfigError(`the command ${arg} must come first: sidecar-proxy ${arg} [flags]`);
    }
    if (!arg.startsWith("--") || arg === "--") {
      const what = arg.startsWith("-") && arg.length > 1 && arg !== "--" ? `unknown option ${arg.split("=")[0]}` : `unexpected argument #${offset + i + 1}`;
      throw new ConfigError(`${what}; options are --name VALUE or --name=VALUE (${known})`);
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const option = lookup(name);
    if (option === undefined) throw new ConfigError(`unknown option --${name} (${known})`);
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
    if (next === undefined || (next.startsWith("-") && !(dashIsValue && next === "-"))) {
      throw new ConfigError(`option --${name} needs a value: --${name} ${option.valueHint ?? "VALUE"} (attach a value starting with "-" as --${name}=VALUE)`);
    }
    flags[name] = next;
    i++;
  }
  return flags;
}
