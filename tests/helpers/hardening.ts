/**
 * Helpers for the hardening tests (issue #5: limits, access control, admin, faults):
 * - NetClient: a raw TCP client on node:net that can bind its source address (127.0.0.2 for
 *   `--allow-clients` tests: Bun.connect has no localAddress) and knows its own port (to find
 *   itself in `/connections`), with explicit half-close and bounded waits;
 * - startProxyWrapped: startProxy with the command run through a wrapper (`ulimit -n N`);
 * - admin endpoint access (fetch and curl) and a strict Prometheus text-format parser;
 * - /proc readers for a process's RSS, open fds, CPU time and listening sockets.
 * Every wait is bounded; nothing here sleeps to make a test pass.
 */
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import net from "node:net";
import { Waiters } from "./net.ts";
import { type RunningProxy, startProxy } from "./proxy.ts";

// ---------------------------------------------------------------------------------------------
// A raw client with a chosen source address

export class NetClient {
  readonly chunks: Buffer[] = [];
  receivedBytes = 0;
  gotFin = false;
  closed = false;
  hadError: Error | undefined;
  keepChunks = true;
  onChunk: ((c: Buffer) => void) | null = null;
  private readonly waiters = new Waiters();

  private constructor(private readonly sock: net.Socket) {}

  /** Connects (bounded by timeoutMs); rejects if the connect fails. */
  static connect(port: number, host = "127.0.0.1", localAddress?: string, timeoutMs = 10_000): Promise<NetClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
      const c = new NetClient(sock);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      sock.on("data", (d: Buffer) => {
        c.receivedBytes += d.byteLength;
        if (c.keepChunks) c.chunks.push(d);
        c.onChunk?.(d);
        c.wake();
      });
      sock.on("end", () => {
        c.gotFin = true;
        c.wake();
      });
      sock.on("error", (e) => {
        c.hadError = e;
        c.wake();
      });
      sock.on("close", () => {
        c.closed = true;
        clearTimeout(timer);
        c.wake();
      });
      sock.once("connect", () => {
        clearTimeout(timer);
        c.localPort = sock.localPort ?? 0;
        c.localAddress = sock.localAddress ?? "";
        resolve(c);
      });
      sock.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /** Source address and port, kept from the connect (node:net forgets them after close). */
  localPort = 0;
  localAddress = "";
  /** The proxy ended or reset the connection (or we closed it). */
  get ended(): boolean {
    return this.gotFin || this.closed;
  }

  private wake(): void {
    this.waiters.wake();
  }

  waitFor(cond: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
    return this.waiters.waitFor(cond, timeoutMs, () => `timed out waiting for ${what} (got ${this.receivedBytes} bytes, fin ${this.gotFin}, closed ${this.closed})`);
  }

  /** Writes and waits until the kernel took it (or the socket is gone). */
  write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    return new Promise((resolve) => {
      if (this.sock.destroyed || !this.sock.writable) return resolve();
      this.sock.write(bytes, () => resolve());
    });
  }

  /** Sends `text` and waits for that many more bytes back (an echo round trip). */
  async roundTrip(text: string, timeoutMs = 10_000): Promise<void> {
    const want = this.receivedBytes + text.length;
    await this.write(text);
    await this.waitFor(() => this.receivedBytes >= want || this.ended, timeoutMs, `echo of ${JSON.stringify(text)}`);
    if (this.receivedBytes < want) throw new Error(`connection ended before the echo of ${JSON.stringify(text)}`);
  }

  halfClose(): void {
    this.sock.end();
  }
  /** Stops reading: what the peer sends fills the kernel's buffers, then waits at the sender. */
  pause(): void {
    this.sock.pause();
  }
  close(): void {
    this.sock.destroy();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("latin1");
  }
}

/** Polls cond every stepMs until true; rejects after timeoutMs. */
export async function until<T>(probe: () => Promise<T> | T, cond: (v: T) => boolean, timeoutMs = 10_000, what = "condition", stepMs = 25): Promise<T> {
  const deadlineMs = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (cond(last)) return last;
    if (Date.now() > deadlineMs) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)?.slice(0, 2000)}`);
    await Bun.sleep(stepMs);
  }
}

// ---------------------------------------------------------------------------------------------
// A proxy started through a wrapper command

/**
 * startProxy (tests/helpers/proxy.ts) with `shell` run first (e.g. `ulimit -n 256`); the proxy
 * is then exec'ed, so the pid is its own. killAll() from proxy.ts stops it too.
 */
export function startProxyWrapped(shell: string, args: string[], timeoutMs = 20_000): Promise<RunningProxy> {
  return startProxy(args, {}, timeoutMs, { shell });
}

// ---------------------------------------------------------------------------------------------
// /proc

export function procRssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export function procFdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Soft RLIMIT_NOFILE of a process. */
export function procFdLimit(pid: number): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

let clkTck: number | undefined;

/** utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15). */
export function procCpuSeconds(pid: number): number {
  clkTck ??= Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) is in parentheses and may contain spaces: split after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14 -> index 11, stime field 15 -> index 12.
  return (Number(fields[11]) + Number(fields[12])) / clkTck;
}

/** Local addresses ("127.0.0.1:4100", "[::1]:80") of the TCP sockets a process has in LISTEN. */
export function procListeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: string[] = [];
  for (const [file, v6] of [["/proc/net/tcp", false], ["/proc/net/tcp6", true]] as const) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A" || !inodes.has(f[9]!)) continue; // 0A = LISTEN
      const [hexAddr, hexPort] = f[1]!.split(":") as [string, string];
      out.push(v6 ? `[${hexAddr}]:${parseInt(hexPort, 16)}` : `${ipv4FromProcHex(hexAddr)}:${parseInt(hexPort, 16)}`);
    }
  }
  return out;
}

function ipv4FromProcHex(h: string): string {
  // Little-endian on x86/arm: "0100007F" is 127.0.0.1.
  const n = parseInt(h, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join(".");
}

// ---------------------------------------------------------------------------------------------
// Admin endpoint

export async function adminGet(p: RunningProxy, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${p.ports.admin}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

export interface ConnectionView {
  id: number;
  listener: string;
  protocol: string;
  client: string;
  target: string | null;
  bytesUp: number;
  bytesDown: number;
  ageMs: number;
  connectMs: number | null;
  termination: string | null;
  error: string | null;
  detail: string | null;
}

export async function connectionsOf(p: RunningProxy): Promise<{ activeCount: number; active: ConnectionView[]; recent: ConnectionView[] }> {
  const r = await adminGet(p, "/connections");
  if (r.status !== 200) throw new Error(`/connections answered ${r.status}`);
  return JSON.parse(r.body);
}

export async function metricsOf(p: RunningProxy): Promise<Metrics> {
  const r = await adminGet(p, "/metrics");
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parsePrometheus(r.body);
}

/** Waits (bounded) until a metric sample satisfies cond. */
export function untilMetric(p: RunningProxy, name: string, labels: Record<string, string>, cond: (v: number | undefined) => boolean, timeoutMs = 10_000, what?: string): Promise<Metrics> {
  return until(
    () => metricsOf(p),
    (m) => cond(m.value(name, labels)),
    timeoutMs,
    what ?? `${name}${JSON.stringify(labels)}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4, parsed strictly

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  help: string | null;
  type: string | null;
  readonly samples: Sample[];
}

export interface Metrics {
  readonly families: Map<string, Family>;
  readonly samples: Sample[];
  /** The one sample with this name whose labels include `labels`; throws if several match. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Sum of every sample with this name whose labels include `labels`. */
  sum(name: string, labels?: Record<string, string>): number;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL_RE = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/;

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const m = LABEL_RE.exec(rest);
    if (!m) throw new Error(`bad label set in ${JSON.stringify(line)}`);
    if (m[1]! in labels) throw new Error(`duplicate label ${m[1]} in ${JSON.stringify(line)}`);
    labels[m[1]!] = m[2]!.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    rest = rest.slice(m[0].length);
    if (m[3] === "" && rest.length > 0) throw new Error(`bad label set in ${JSON.stringify(line)}`);
  }
  return labels;
}

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value ${JSON.stringify(text)} in ${JSON.stringify(line)}`);
  return Number(text);
}

/** The family a sample belongs to: histogram/summary series carry a suffix. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === "histogram" || f.type === "summary")) return f;
  }
  return undefined;
}

/**
 * Parses the text format and checks it: every sample line is `name{labels} value`, belongs to a
 * family declared by `# HELP` and `# TYPE` before it, no family is declared twice, no sample is
 * repeated, counters are >= 0, and every histogram series has cumulative buckets ending in
 * `le="+Inf"` whose count equals `_count`, plus a `_sum`. Throws on any violation.
 */
export function parsePrometheus(text: string): Metrics {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") throw new Error("empty line in exposition");
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!new RegExp(`^${NAME}$`).test(name)) throw new Error(`bad metric name in ${JSON.stringify(line)}`);
      let f = families.get(name);
      if (!f) {
        if (familyOf(name, families) !== undefined) throw new Error(`family ${name} collides with a histogram series`);
        f = { name, help: null, type: null, samples: [] };
        families.set(name, f);
      }
      if (f.samples.length > 0) throw new Error(`# ${kind} for ${name} after its samples`);
      if (kind === "HELP") {
        if (f.help !== null) throw new Error(`second HELP for ${name}`);
        f.help = rest;
      } else {
        if (f.type !== null) throw new Error(`second TYPE for ${name}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`bad TYPE ${rest} for ${name}`);
        f.type = rest;
      }
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const labels = m[2] === undefined ? {} : parseLabels(m[2], line);
    const value = parseValue(m[3]!, line);
    const f = familyOf(name, families);
    if (!f) throw new Error(`sample ${name} has no HELP/TYPE before it`);
    if (f.help === null || f.type === null) throw new Error(`family ${f.name} lacks ${f.help === null ? "HELP" : "TYPE"}`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`;
    if (seen.has(key)) throw new Error(`duplicate sample ${key}`);
    seen.add(key);
    if (f.type === "counter" && !(value >= 0)) throw new Error(`counter ${key} is ${value}`);
    if (f.type === "histogram" && name === f.name) throw new Error(`histogram ${f.name} has a bare sample`);
    const s: Sample = { name, labels, value };
    f.samples.push(s);
    samples.push(s);
  }
  for (const f of families.values()) {
    if (f.help === null || f.type === null) throw new Error(`family ${f.name} lacks ${f.help === null ? "HELP" : "TYPE"}`);
    if (f.type === "histogram") checkHistogram(f);
  }
  const matches = (s: Sample, name: string, labels: Record<string, string>) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  return {
    families,
    samples,
    value(name, labels = {}) {
      const hits = samples.filter((s) => matches(s, name, labels));
      if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}`);
      return hits[0]?.value;
    },
    sum(name, labels = {}) {
      return samples.filter((s) => matches(s, name, labels)).reduce((a, s) => a + s.value, 0);
    },
  };
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let e = series.get(key);
    if (!e) series.set(key, (e = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}_bucket without le`);
      e.buckets.push([parseValue(le, le), s.value]);
    } else if (s.name === `${f.name}_sum`) e.sum = s.value;
    else if (s.name === `${f.name}_count`) e.count = s.value;
  }
  for (const [key, e] of series) {
    if (e.buckets.length === 0 || e.sum === undefined || e.count === undefined) throw new Error(`histogram ${f.name}${key} lacks buckets, _sum or _count`);
    for (let i = 1; i < e.buckets.length; i++) {
      if (!(e.buckets[i]![0] > e.buckets[i - 1]![0])) throw new Error(`histogram ${f.name}${key}: le not increasing`);
      if (e.buckets[i]![1] < e.buckets[i - 1]![1]) throw new Error(`histogram ${f.name}${key}: buckets not cumulative`);
    }
    const last = e.buckets[e.buckets.length - 1]!;
    if (last[0] !== Infinity) throw new Error(`histogram ${f.name}${key}: last bucket is not +Inf`);
    if (last[1] !== e.count) throw new Error(`histogram ${f.name}${key}: +Inf bucket ${last[1]} != _count ${e.count}`);
  }
}

// ---------------------------------------------------------------------------------------------
// SOCKS bytes

export function socks5Connect(host: string, port: number): Buffer {
  const p = [port >> 8, port & 0xff];
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, ...host.split(".").map(Number), ...p]);
  const name = Buffer.from(host, "latin1");
  return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, name.length]), name, Buffer.from(p)]);
}

/** SOCKS5 greeting + CONNECT to an IPv6 address given as 16 bytes. */
export function socks5Connect6(addr: number[], port: number): Buffer {
  return Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x04, ...addr, port >> 8, port & 0xff]);
}

/** Method selection (2 bytes) + reply (10 bytes for an IPv4 BND) = 12 bytes before tunnel data. */
export const SOCKS5_HEAD_BYTES = 12;

/** The REP byte of a SOCKS5 reply that follows the 2-byte method selection, or null. */
export function socks5Rep(c: { chunks: Uint8Array[] }): number | null {
  const all = Buffer.concat(c.chunks);
  return all.length >= 4 ? all[3]! : null;
}

/**
 * Connects, sends `payload`, and checks the proxy closed the connection without sending a byte.
 * A refusal by reset can beat the connect's own completion (the connect then fails with
 * ECONNRESET): that counts as refused too. Returns how it ended.
 */
export async function expectRefusedSilently(port: number, host: string, payload: string | Uint8Array, localAddress?: string): Promise<"closed" | "reset-at-connect"> {
  let c: NetClient;
  try {
    c = await NetClient.connect(port, host, localAddress);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ECONNRESET" || code === "EPIPE") return "reset-at-connect";
    throw err;
  }
  await c.write(payload);
  await c.waitFor(() => c.ended, 10_000, "the refused connection to be closed");
  if (c.receivedBytes !== 0) throw new Error(`a refused connection got ${c.receivedBytes} bytes: ${JSON.stringify(c.text().slice(0, 200))}`);
  return "closed";
}
