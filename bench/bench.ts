/**
 * Side-by-side benchmark of sidecar-proxy against real peers on loopback (issue #7).
 * Run it through bench/run.sh, which compiles bench/loadgen.c and the sidecar-proxy binary,
 * then calls this with LOADGEN, BENCH_RUN, BENCH_PIDFILE, SIDECAR_BIN and FLOOR_BIN set.
 *
 *   bench/run.sh [--quick] [--rounds N] [--only ID,ID] [--source | --bin PATH] [modes...]
 *   modes: rr pingpong bulk idle http startup (default: all)
 *
 * Each mode: for every round, every contestant in turn (the order rotates each round) is started
 * fresh from its template, measured with identical parameters, and stopped. Medians over rounds,
 * min/max, ratios to `direct` and to the best peer of the same kind go to bench/out/<stamp>.md
 * (and .json); a full run (no --quick/--only/--rounds, every mode) also refreshes the generated
 * part of bench/RESULTS.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { KIND_TITLE, contestants, type Contestant, type Kind, type Vars } from "./contestants.ts";
import { cpuBusy, machine, updateResults } from "./machine.ts";
import { type Running, freePort, killAll, run, sleep, start, stop, track, writeConfig } from "./procs.ts";
import { type Row, type Sample, type Table, median, renderTable, standings } from "./report.ts";

const HERE = import.meta.dir;
const ROOT = join(HERE, "..");
const MODES = ["rr", "pingpong", "bulk", "idle", "http", "startup"] as const;
type Mode = (typeof MODES)[number];

// ------------------------------------------------------------------------------- options

interface Options {
  quick: boolean;
  rounds: number;
  modes: Mode[];
  only: Set<string> | null;
  source: boolean;
  bin: string | null;
  full: boolean;
  argv: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, rounds: 0, modes: [], only: null, source: false, bin: null, full: false, argv };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") o.quick = true;
    else if (a === "--source") o.source = true;
    else if (a === "--rounds") o.rounds = Number(argv[++i]);
    else if (a === "--bin") o.bin = argv[++i] ?? null;
    else if (a === "--only") o.only = new Set((argv[++i] ?? "").split(","));
    else if ((MODES as readonly string[]).includes(a)) o.modes.push(a as Mode);
    else throw new Error(`unknown argument ${a}; usage: bench/run.sh [--quick] [--rounds N] [--only ID,ID] [--source | --bin PATH] [${MODES.join("|")}...]`);
  }
  if (o.rounds && !(o.rounds >= 1 && o.rounds <= 9)) throw new Error("--rounds must be 1..9");
  o.full = !o.quick && !o.only && !o.rounds && !o.source && !o.bin && (o.modes.length === 0 || o.modes.length === MODES.length);
  if (o.modes.length === 0) o.modes = [...MODES];
  if (!o.rounds) o.rounds = o.quick ? 1 : 3;
  return o;
}

const opts = (() => {
  try {
    return parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  }
})();
/** Parameters: identical for every contestant. */
const P = opts.quick
  ? { durationS: 1, warmupS: 0.3, bulkBytes: 64 * 2 ** 20, idleTunnels: 1000, httpS: 1, httpWarmupS: 0, startupRuns: 5 }
  : { durationS: 3, warmupS: 0.5, bulkBytes: 256 * 2 ** 20, idleTunnels: 1000, httpS: 3, httpWarmupS: 1, startupRuns: 10 };
const CLIENTS = [16, 64];
const BULK_TUNNELS = 4;

const LOADGEN = must("LOADGEN");
const RUN = must("BENCH_RUN");
const SIDECAR = opts.source ? [process.execPath, join(ROOT, "proxy.ts")] : [must("SIDECAR_BIN")];
const FLOOR = opts.source ? [process.execPath, join(HERE, "floor", "relay.ts")] : [must("FLOOR_BIN")];

function must(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: start the benchmark with bench/run.sh`);
  return v;
}

function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ------------------------------------------------------------------------------- upstream

interface Upstream {
  echo: number;
  http: number;
}

async function startUpstream(): Promise<Upstream> {
  const proc = Bun.spawn([LOADGEN, "server"], { stdout: "pipe", stderr: "inherit", stdin: "ignore" });
  track(proc);
  const reader = proc.stdout.getReader();
  let text = "";
  const deadline = Date.now() + 5000;
  while (!text.includes("\n") && Date.now() < deadline) {
    const { value, done } = await Promise.race([reader.read(), sleep(5000).then(() => ({ value: undefined, done: true }))]);
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const ports = JSON.parse(text.split("\n")[0]!) as Upstream;
  return ports;
}

// ------------------------------------------------------------------------------- contestants

const ALL = contestants({ sidecar: SIDECAR, floor: FLOOR }, join(HERE, "peers"));
const DIRECT_KEY = "direct";

function selected(kinds: Kind[], mode: Mode): Contestant[] {
  return ALL.filter((c) => kinds.includes(c.kind) && (!c.modes || c.modes.includes(mode)) && (!opts.only || opts.only.has(c.id)));
}

async function launch(c: Contestant, up: Upstream, tag: string): Promise<Running> {
  const port = await freePort();
  const vars: Vars = { PORT: String(port), ECHO_PORT: String(up.echo), HTTP_PORT: String(up.http), RUN, CONF: "" };
  if (c.config) vars.CONF = writeConfig(RUN, c.config, vars, `${c.kind}-${c.id}-${c.config.split("/").pop()}`);
  return start({ id: `${c.id} (${c.kind})`, cmd: c.cmd(vars), port, logPath: c.quiet ? "/dev/null" : join(RUN, `${c.kind}-${c.id}-${tag}.log`) });
}

function rotate<T>(list: T[], by: number): T[] {
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function rowOf(table: Table, c: Contestant | null): Row {
  const key = c ? `${c.kind}:${c.id}` : DIRECT_KEY;
  let row = table.rows.find((r) => r.key === key);
  if (!row) {
    row = c
      ? { key, group: c.kind, label: KIND_TITLE[c.kind], id: c.id, ours: c.ours, reference: c.reference ?? false, samples: [] }
      : { key, group: null, label: "—", id: "direct (no proxy)", ours: false, reference: false, samples: [] };
    table.rows.push(row);
  }
  return row;
}

/** Rows in a stable order: direct, then each kind with sidecar-proxy first. */
function sortRows(table: Table, order: Contestant[]): void {
  const rank = (r: Row) => (r.key === DIRECT_KEY ? -1 : order.findIndex((c) => `${c.kind}:${c.id}` === r.key));
  table.rows.sort((a, b) => rank(a) - rank(b));
}

function failed(err: unknown): Sample {
  const msg = err instanceof Error ? err.message : String(err);
  return { value: NaN, errors: 1, firstError: msg.replace(/\s+/g, " ").slice(0, 300) };
}

// ------------------------------------------------------------------------------- loadgen

interface LoadgenResult {
  ops: number;
  errors: number;
  rate?: number;
  p50_us?: number;
  p99_us?: number;
  mib_s?: number;
  bytes?: number;
  proxy_cpu_s?: number;
  proxy?: { hwm_kib: number; rss_kib: number; pss_kib: number; nprocs: number };
  anon_per_tunnel_kib?: number;
  pss_per_tunnel_kib?: number;
  rss_per_tunnel_kib?: number;
  first_error?: string;
  error_kinds?: Record<string, number>;
}

async function loadgen(args: string[], timeoutMs: number): Promise<LoadgenResult> {
  const r = await run([LOADGEN, ...args], { timeoutMs });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (!line.startsWith("{")) throw new Error(`loadgen exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  return JSON.parse(line) as LoadgenResult;
}

function clientArgs(c: Contestant | null, running: Running | null, up: Upstream, mode: string, conns: number): string[] {
  const args = ["client", "--mode", mode, "--proto", c?.proto ?? "plain", "--target", `127.0.0.1:${up.echo}`, "--conns", String(conns)];
  if (running) args.push("--proxy", `127.0.0.1:${running.port}`, "--watch-pid", String(running.pid));
  args.push("--duration", String(P.durationS), "--warmup", String(P.warmupS), "--bytes", String(P.bulkBytes));
  if (mode === "rr") args.push("--src-ips", "16");
  return args;
}

function errorText(r: LoadgenResult): string | undefined {
  if (!r.errors) return undefined;
  return `${r.errors} errors ${JSON.stringify(r.error_kinds ?? {})}${r.first_error ? `, first: ${r.first_error}` : ""}`;
}

// ------------------------------------------------------------------------------- tunnel modes

const TUNNEL_KINDS: Kind[] = ["socks", "socks4", "connect", "tcp"];

interface Variant {
  table: Table;
  measure(c: Contestant | null, running: Running | null): Promise<Sample>;
}

function tunnelVariants(mode: "rr" | "pingpong" | "bulk" | "idle", up: Upstream): Variant[] {
  const timeout = (P.warmupS + P.durationS) * 1000 + 90_000;
  if (mode === "rr" || mode === "pingpong") {
    return CLIENTS.map((n) => ({
      table: {
        key: `${mode}-${n}`,
        title: mode === "rr" ? `rr: connect + handshake + 64 B request/reply + server FIN + close, ${n} clients` : `pingpong: 64 B round trips on ${n} open tunnels`,
        unit: mode === "rr" ? "conn/s" : "round trips/s",
        higherIsBetter: true,
        cpuUnit: mode === "rr" ? "µs/conn" : "µs/round trip",
        latency: true,
        rows: [],
      },
      async measure(c, running) {
        const r = await loadgen(clientArgs(c, running, up, mode, n), timeout);
        return {
          value: r.rate ?? NaN,
          p50Us: r.p50_us,
          p99Us: r.p99_us,
          cpu: running && r.ops ? ((r.proxy_cpu_s ?? 0) / r.ops) * 1e6 : undefined,
          hwmKib: running ? r.proxy?.hwm_kib : undefined,
          errors: r.errors,
          firstError: errorText(r),
        };
      },
    }));
  }
  if (mode === "bulk") {
    return (["up", "down"] as const).map((dir) => ({
      table: {
        key: `bulk-${dir}`,
        title: `bulk ${dir === "up" ? "upload (client → server)" : "download (server → client)"}: ${BULK_TUNNELS} tunnels × ${P.bulkBytes / 2 ** 20} MiB, every byte checked`,
        unit: "MiB/s",
        higherIsBetter: true,
        cpuUnit: "s/GiB",
        latency: false,
        rows: [],
      },
      async measure(c, running) {
        const r = await loadgen(clientArgs(c, running, up, dir === "up" ? "bulkup" : "bulkdown", BULK_TUNNELS), timeout);
        return {
          value: r.mib_s ?? NaN,
          cpu: running && r.bytes ? (r.proxy_cpu_s ?? 0) / (r.bytes / 2 ** 30) : undefined,
          hwmKib: running ? r.proxy?.hwm_kib : undefined,
          errors: r.errors,
          firstError: errorText(r),
        };
      },
    }));
  }
  return [
    {
      table: {
        key: "idle",
        title: `idle: memory per open tunnel, ${P.idleTunnels} tunnels held (anonymous memory of the process tree, after − before)`,
        unit: "KiB/tunnel",
        higherIsBetter: false,
        cpuUnit: null,
        latency: false,
        rows: [],
      },
      async measure(c, running) {
        const r = await loadgen(clientArgs(c, running, up, "idle", P.idleTunnels), 120_000);
        // Pss_Anon (+ Pss_Shmem): heap and stacks, pages shared after fork() counted once. Total
        // RSS/PSS would also count code pages first touched during the test, and PSS of a binary
        // shared with unrelated processes (other Bun processes on the machine) drifts with them.
        const rss = r.rss_per_tunnel_kib;
        const procs = r.proxy?.nprocs ?? 1;
        return {
          value: r.anon_per_tunnel_kib ?? NaN,
          hwmKib: r.proxy?.hwm_kib,
          errors: r.errors,
          firstError: errorText(r),
          note: rss !== undefined && (procs > 1 || Math.abs(rss - (r.anon_per_tunnel_kib ?? rss)) > 2) ? `RSS per tunnel ${rss.toFixed(1)} KiB (${procs} process${procs > 1 ? "es" : ""})` : undefined,
        };
      },
    },
  ];
}

async function runRounds(label: string, list: Array<Contestant | null>, variants: Variant[], up: Upstream): Promise<Table[]> {
  for (let round = 0; round < opts.rounds; round++) {
    for (const c of rotate(list, round)) {
      const name = c ? `${c.id} (${c.kind})` : "direct";
      let running: Running | null = null;
      try {
        if (c) running = await launch(c, up, `${label}-${round}`);
        for (const v of variants) {
          let sample: Sample;
          try {
            sample = await v.measure(c, running);
          } catch (err) {
            sample = failed(err);
          }
          rowOf(v.table, c).samples.push(sample);
          log(`${v.table.key} round ${round + 1}/${opts.rounds} ${name}: ${Number.isFinite(sample.value) ? sample.value.toFixed(1) : "—"} ${v.table.unit}${sample.errors ? ` ERRORS ${sample.firstError}` : ""}`);
        }
      } catch (err) {
        for (const v of variants) rowOf(v.table, c).samples.push(failed(err));
        log(`${label} round ${round + 1} ${name}: FAILED ${failed(err).firstError}`);
      } finally {
        if (running) await stop(running);
      }
    }
  }
  const tables = variants.map((v) => v.table);
  for (const t of tables) sortRows(t, ALL);
  return tables;
}

// ------------------------------------------------------------------------------- http

async function httpMode(up: Upstream): Promise<Table[]> {
  const list: Array<Contestant | null> = [null, ...selected(["http-fwd", "http-rev"], "http")];
  const checkLua = join(HERE, "wrk", "check.lua");
  const wrk = async (c: Contestant | null, running: Running | null, conns: number, seconds: number) => {
    const url = `http://127.0.0.1:${running ? running.port : up.http}/`;
    const env = c?.kind === "http-fwd" ? { BENCH_ORIGIN: `127.0.0.1:${up.http}` } : { BENCH_ORIGIN: "" };
    const r = await run(["wrk", "-t1", `-c${conns}`, `-d${seconds}s`, "--timeout", "5s", "-s", checkLua, url], { timeoutMs: seconds * 1000 + 30_000, env });
    const line = r.stdout.split("\n").find((l) => l.startsWith("WRKJSON "));
    if (!line) throw new Error(`wrk exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
    return JSON.parse(line.slice(8)) as Record<string, number | string>;
  };
  const variants: Variant[] = CLIENTS.map((n) => ({
    table: {
      key: `http-${n}`,
      title: `http: keep-alive GET, 64 B body, ${n} connections (wrk, every body checked)`,
      unit: "req/s",
      higherIsBetter: true,
      cpuUnit: "µs/req",
      latency: true,
      rows: [],
    },
    async measure(c, running) {
      if (P.httpWarmupS && n === CLIENTS[0]) await wrk(c, running, n, P.httpWarmupS);
      const before = running ? await procstat(running.pid) : null;
      const r = await wrk(c, running, n, P.httpS);
      const after = running ? await procstat(running.pid) : null;
      const requests = Number(r.requests);
      const errors = Number(r.status_errors) + Number(r.bad_responses) + Number(r.timeouts) + Number(r.connect_errors) + Number(r.write_errors);
      const reads = Number(r.read_errors);
      return {
        value: requests / (Number(r.duration_us) / 1e6),
        p50Us: Number(r.p50_us),
        p99Us: Number(r.p99_us),
        cpu: before && after && requests ? ((after.cpu_s - before.cpu_s) / requests) * 1e6 : undefined,
        hwmKib: after?.hwm_kib,
        errors,
        firstError: errors ? `${errors} bad responses/errors, first: ${r.first_bad}` : undefined,
        note: reads ? `${reads} read errors: the proxy closed the client connection after responses (no client keep-alive); every response received was checked` : undefined,
      };
    },
  }));
  return runRounds("http", list, variants, up);
}

async function procstat(pid: number): Promise<{ cpu_s: number; hwm_kib: number }> {
  const r = await run([LOADGEN, "procstat", String(pid)], { timeoutMs: 10_000 });
  return (JSON.parse(r.stdout) as { proxy: { cpu_s: number; hwm_kib: number } }).proxy;
}

// ------------------------------------------------------------------------------- startup

async function startupMode(up: Upstream): Promise<Table[]> {
  const table: Table = {
    key: "startup",
    title: `startup: exec → 127.0.0.1 accepting, median of ${P.startupRuns} starts per round`,
    unit: "ms",
    higherIsBetter: false,
    cpuUnit: null,
    latency: false,
    rows: [],
    target: { value: 25, label: "issue #7 target: under" },
  };
  const ours = ALL.find((c) => c.ours && c.kind === "tcp")!;
  const entries: Array<{ c: Contestant; id: string; ours: boolean }> = [
    { c: ours, id: opts.source ? "sidecar-proxy (bun proxy.ts)" : "sidecar-proxy (compiled binary)", ours: true },
    ...(opts.source ? [] : [{ c: { ...ours, cmd: (v: Vars) => [process.execPath, join(ROOT, "proxy.ts"), ...ours.cmd(v).slice(1)] }, id: "sidecar-proxy (bun proxy.ts, for reference)", ours: false }]),
    ...selected(TUNNEL_KINDS, "startup").filter((c) => !c.ours).map((c) => ({ c, id: c.id, ours: false })),
  ].filter((e) => !opts.only || opts.only.has(e.c.id));
  const readyNotes: number[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    for (const e of rotate(entries, round)) {
      const key = `startup:${e.id}`;
      let row = table.rows.find((r) => r.key === key);
      if (!row) {
        // The `bun proxy.ts` row is for reference only: it is not a peer to beat.
        const reference = e.c.ours && !e.ours;
        row = { key, group: "startup", label: KIND_TITLE[e.c.kind], id: e.id, ours: e.ours, reference, samples: [] };
        table.rows.push(row);
      }
      try {
        const port = await freePort();
        const vars: Vars = { PORT: String(port), ECHO_PORT: String(up.echo), HTTP_PORT: String(up.http), RUN, CONF: "" };
        if (e.c.config) vars.CONF = writeConfig(RUN, e.c.config, vars, `startup-${e.c.id}-${e.c.config.split("/").pop()}`);
        const cmd = e.c.cmd(vars);
        const readyIdx = cmd.indexOf("--ready-file");
        const args = ["startup", "--port", String(port), "--runs", String(P.startupRuns), "--timeout", "10"];
        if (readyIdx >= 0) args.push("--ready-file", cmd[readyIdx + 1]!);
        const r = await run([LOADGEN, ...args, "--", ...cmd], { timeoutMs: P.startupRuns * 12_000 });
        const out = JSON.parse(r.stdout) as { runs: Array<{ accept_ms: number; ready_ms: number }>; failures: number };
        const accepted = out.runs.map((x) => x.accept_ms).filter((x) => x >= 0);
        if (e.ours && readyIdx >= 0) readyNotes.push(median(out.runs.map((x) => x.ready_ms).filter((x) => x >= 0)));
        row.samples.push({ value: median(accepted), errors: out.failures, firstError: out.failures ? `${out.failures} starts never accepted` : undefined });
        log(`startup round ${round + 1}/${opts.rounds} ${e.id}: ${median(accepted).toFixed(1)} ms`);
      } catch (err) {
        row.samples.push(failed(err));
        log(`startup round ${round + 1} ${e.id}: FAILED ${failed(err).firstError}`);
      }
    }
  }
  if (readyNotes.length) {
    const ours = table.rows.find((r) => r.ours);
    if (ours) ours.samples[0]!.note = `--ready-file written after ${median(readyNotes).toFixed(1)} ms (median)`;
  }
  return [table];
}

// ------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  const load0 = loadavg();
  const cpu0 = cpuBusy();
  mkdirSync(join(HERE, "out"), { recursive: true });
  const up = await startUpstream();
  log(`upstream echo 127.0.0.1:${up.echo}, http 127.0.0.1:${up.http}; modes ${opts.modes.join(" ")}; ${opts.rounds} round(s)${opts.quick ? " (quick)" : ""}`);
  const tables: Table[] = [];
  for (const mode of opts.modes) {
    const t0 = Date.now();
    if (mode === "http") tables.push(...(await httpMode(up)));
    else if (mode === "startup") tables.push(...(await startupMode(up)));
    else {
      const list: Array<Contestant | null> = [...(mode === "idle" ? [] : [null]), ...selected(TUNNEL_KINDS, mode)];
      tables.push(...(await runRounds(mode, list, tunnelVariants(mode, up), up)));
    }
    log(`${mode} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const cpu1 = cpuBusy();
  const load1 = loadavg();
  const elapsedS = (Date.now() - started) / 1000;
  const stamp = new Date(started).toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const command = `bench/run.sh ${opts.argv.join(" ")}`.trim();
  const md = [
    `## Run ${new Date(started).toISOString().slice(0, 16).replace("T", " ")} UTC — \`${command}\``,
    "",
    ...machine(opts.source ? "`bun proxy.ts` (sources)" : opts.bin ? `the binary ${opts.bin}` : "compiled binary built from the working tree by bench/run.sh with build.ts (`bun build --compile --bytecode`)", ROOT),
    `- conditions: ${elapsedS.toFixed(0)} s wall; load average ${load0.map((x) => x.toFixed(2)).join(" ")} at start, ${load1.map((x) => x.toFixed(2)).join(" ")} at end; all CPUs ${(((cpu1.busy - cpu0.busy) / (cpu1.total - cpu0.total)) * 100).toFixed(0)}% busy over the run (this benchmark plus anything else running on the machine)`,
    `- parameters: ${opts.rounds} round(s), contestant order rotated each round, each contestant started fresh per mode and round; rr/pingpong ${P.warmupS} s warm-up + ${P.durationS} s measured; bulk ${BULK_TUNNELS} × ${P.bulkBytes / 2 ** 20} MiB each way; idle ${P.idleTunnels} tunnels; http ${P.httpWarmupS ? `${P.httpWarmupS} s warm-up + ` : ""}${P.httpS} s per wrk run (1 thread); startup ${P.startupRuns} starts per round`,
    `- loopback only; one worker/thread for HAProxy, nginx and Squid (sidecar-proxy has one event loop); microsocks and tinyproxy (thread per client) and Dante (process pool) cannot be limited and may use both CPUs`,
    "",
    "### Where sidecar-proxy stands (worst first)",
    "",
    standings(tables),
    "",
    ...tables.flatMap((t) => [renderTable(t), ""]),
  ].join("\n");
  const base = join(HERE, "out", stamp);
  writeFileSync(`${base}.md`, md + "\n");
  writeFileSync(`${base}.json`, JSON.stringify({ command, started, elapsedS, params: P, rounds: opts.rounds, tables }, null, 1) + "\n");
  process.stdout.write(md + "\n");
  log(`wrote ${base}.md and .json (${elapsedS.toFixed(0)} s)`);
  if (opts.full) updateResults(HERE, md, log);
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}
process.on("exit", killAll);

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (err) => {
    console.error(err);
    killAll();
    process.exit(1);
  },
);
