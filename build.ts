/**
 * `bun run build`: one self-contained executable per target in dist/ (SPEC §6 Delivery).
 * Cross targets are fetched by Bun from the npm registry and cached.
 *
 *   bun build.ts                 all targets
 *   bun build.ts linux-x64       only the named ones
 *   bun build.ts --outdir DIR    elsewhere than dist/ (bench/run.sh builds into bench/.work)
 *
 * --no-compile-autoload-bunfig / -dotenv: otherwise the binary would read ./bunfig.toml and
 * ./.env of whatever directory it is started in (RUNTIME-NOTES).
 *
 * --bytecode: the bundle is shipped as precompiled JSC bytecode, so start-up skips parsing it.
 * Measured with bench/startup.ts (exec -> forward listener accepting, n=20, linux-x64):
 * median ~26 ms without, ~12 ms with; each binary grows ~2.4 MiB. It needs --format=esm: with the
 * default (cjs) format a dependency's `import.meta` breaks the binary at start-up while the
 * build only warns (RUNTIME-NOTES). The end-to-end suites pass against the bytecode binary
 * (SIDECAR_PROXY_BIN, see README).
 */
import { statSync } from "node:fs";
import { join } from "node:path";

const TARGETS: Record<string, string> = {
  "linux-x64": "bun-linux-x64",
  "linux-x64-musl": "bun-linux-x64-musl",
  "linux-arm64": "bun-linux-arm64",
};

const root = import.meta.dir;
const args = process.argv.slice(2);
const outdirAt = args.indexOf("--outdir");
const outdir = outdirAt >= 0 ? args.splice(outdirAt, 2)[1] : join(root, "dist");
if (!outdir) {
  console.error("--outdir needs a directory");
  process.exit(2);
}
const names = args.length > 0 ? args : Object.keys(TARGETS);
let failed = false;

for (const name of names) {
  const target = TARGETS[name];
  if (!target) {
    console.error(`unknown target ${name}; known: ${Object.keys(TARGETS).join(", ")}`);
    process.exit(2);
  }
  const outfile = join(outdir, `sidecar-proxy-${name}`);
  const started = performance.now();
  const proc = Bun.spawnSync(
    [
      process.execPath,
      "build",
      "--compile",
      `--target=${target}`,
      "--minify",
      "--sourcemap=none",
      "--bytecode",
      "--format=esm",
      "--no-compile-autoload-bunfig",
      "--no-compile-autoload-dotenv",
      join(root, "proxy.ts"),
      "--outfile",
      outfile,
    ],
    { stdout: "inherit", stderr: "inherit", cwd: root },
  );
  if (proc.exitCode !== 0) {
    console.error(`build ${name} failed (exit ${proc.exitCode})`);
    failed = true;
    continue;
  }
  const mib = statSync(outfile).size / (1024 * 1024);
  console.log(`${outfile}  ${mib.toFixed(1)} MiB  (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
process.exit(failed ? 1 : 0);
