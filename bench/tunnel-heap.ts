/**
 * What one open tunnel keeps on the JavaScript heap: `bun proxy.ts` (through
 * bench/heap-entry.ts) with N tunnels open and with 2N, each proven with one echo, after a full
 * collection both times. Deterministic where bench/run.sh's idle mode (the
 * process's anonymous memory) moves by ±0.3 KiB per tunnel between runs: for weighing what a
 * change adds to or takes from every tunnel.
 *
 *   bun bench/tunnel-heap.ts [tcp|socks|connect] [N]     (default: tcp 1000)
 *
 * Prints heap bytes and objects per tunnel, and the object types that changed by half an
 * object per tunnel or more. Needs cc (bench/loadgen.c is the echo upstream). Loopback only.
 */
import { connect, type Socket } from "node:net";
import { join } from "node:path";

const HERE = import.meta.dir;
const MODE = process.argv[2] ?? "tcp";
const N = Number(process.argv[3] ?? 1000);
if (!["tcp", "socks", "connect"].includes(MODE) || !(N > 0 && N <= 20_000)) {
  console.error("usage: bun bench/tunnel-heap.ts [tcp|socks|connect] [N <= 20000]");
  process.exit(2);
}
const WAIT_MS = 10_000;

const loadgen = join(HERE, ".work", "loadgen");
Bun.spawnSync(["mkdir", "-p", join(HERE, ".work")]);
if (Bun.spawnSync(["cc", "-O2", "-o", loadgen, join(HERE, "loadgen.c")]).exitCode !== 0) throw new Error("cc bench/loadgen.c failed");

/** The first line of a stream that satisfies `pick`, within WAIT_MS. */
async function lineOf<T>(stream: ReadableStream<Uint8Array>, pick: (line: string) => T | undefined): Promise<T> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + WAIT_MS;
  try {
    while (Date.now() < deadline) {
      const { value, done } = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => ({ value: undefined, done: true }))]);
      if (done) break;
      text += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = text.indexOf("\n")) >= 0) {
        const found = pick(text.slice(0, nl));
        text = text.slice(nl + 1);
        if (found !== undefined) return found;
      }
    }
  } finally {
    reader.releaseLock();
  }
  throw new Error("no such line within 10 s");
}

const upstream = Bun.spawn([loadgen, "server"], { stdout: "pipe", stderr: "inherit" });
const proxy = { process: null as ReturnType<typeof Bun.spawn> | null };
try {
  const ports = await lineOf(upstream.stdout, (l) => JSON.parse(l) as { echo: number });
  const dir = Bun.spawnSync(["mktemp", "-d"]).stdout.toString().trim();
  const ready = join(dir, "ready.json");
  const flags =
    MODE === "tcp"
      ? ["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(ports.echo), "--proxy-in-port", "0", "--in-bind", "127.0.0.1"]
      : ["--proxy-type", "forward", "--proxy-protocol", MODE === "socks" ? "socks" : "http", "--proxy-out-port", "0", "--out-bind", "127.0.0.1"];
  const p = Bun.spawn([process.execPath, join(HERE, "heap-entry.ts"), ...flags, "--no-admin", "--log-level", "error", "--ready-file", ready], { stdout: "ignore", stderr: "pipe" });
  proxy.process = p;
  const deadline = Date.now() + WAIT_MS;
  while (!(await Bun.file(ready).exists()) && Date.now() < deadline) await Bun.sleep(50);
  const info = (await Bun.file(ready).json()) as Record<string, { port: number }[]>;
  const port = info[MODE === "tcp" ? "reverse" : "forward"]![0]!.port;
  const stderr = p.stderr as ReadableStream<Uint8Array>;
  const snapshot = async () => {
    p.kill("SIGUSR2");
    return lineOf(stderr, (l) => (l.startsWith("HEAP ") ? (JSON.parse(l.slice(5)) as { heapBytes: number; objects: number; types: Record<string, number> }) : undefined));
  };

  /** Reads exactly `n` bytes (or fails within WAIT_MS). */
  const readExactly = (s: Socket, n: number): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      let got = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error("tunnel: no answer within 10 s")), WAIT_MS);
      const onData = (b: Buffer) => {
        got = Buffer.concat([got, b]);
        if (got.length < n) return;
        clearTimeout(timer);
        s.off("data", onData);
        if (got.length > n) reject(new Error("tunnel: more bytes than asked for"));
        else resolve(got);
      };
      s.on("data", onData);
      s.once("error", reject);
    });
  const open = async (): Promise<Socket> => {
    const s = connect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => s.once("connect", resolve).once("error", reject));
    if (MODE === "socks") {
      s.write(Buffer.from([5, 1, 0]));
      await readExactly(s, 2);
      s.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, ports.echo >> 8, ports.echo & 0xff]));
      if ((await readExactly(s, 10))[1] !== 0) throw new Error("SOCKS5 CONNECT refused");
    } else if (MODE === "connect") {
      const head = `CONNECT 127.0.0.1:${ports.echo} HTTP/1.1\r\nHost: 127.0.0.1:${ports.echo}\r\n\r\n`;
      s.write(head);
      const ok = "HTTP/1.1 200 Connection established\r\n\r\n";
      if ((await readExactly(s, ok.length)).toString() !== ok) throw new Error("CONNECT refused");
    }
    const probe = Buffer.alloc(64, 0x61);
    s.write(probe);
    if (!(await readExactly(s, 64)).equals(probe)) throw new Error("echo differs");
    return s;
  };

  // The first N tunnels stay open and are not counted: what is made once (compiled code, object
  // shapes, tables sized on first use) is made while they open. The next N are the measure.
  const sockets: Socket[] = [];
  for (let i = 0; i < N; i++) sockets.push(await open());
  const before = await snapshot();
  for (let i = 0; i < N; i++) sockets.push(await open());
  const after = await snapshot();
  for (const s of sockets) s.destroy();

  console.log(`${MODE}: ${N} more tunnels, ${((after.heapBytes - before.heapBytes) / N).toFixed(0)} heap bytes and ${((after.objects - before.objects) / N).toFixed(2)} objects per tunnel`);
  const types = new Set([...Object.keys(before.types), ...Object.keys(after.types)]);
  const changed = [...types].map((t) => [t, ((after.types[t] ?? 0) - (before.types[t] ?? 0)) / N] as const).filter(([, d]) => Math.abs(d) >= 0.5);
  for (const [t, d] of changed.sort((a, b) => b[1] - a[1])) console.log(`  ${d.toFixed(2).padStart(6)}  ${t}`);
} finally {
  proxy.process?.kill();
  upstream.kill();
}
