/**
 * The README's CI one-liner (issue #6 item 5), run as written, in bash:
 *
 *   ./sidecar-proxy --proxy-type forward --proxy-protocol http --ready-file /tmp/sp.ready &
 *   until [ -s /tmp/sp.ready ]; do sleep 0.1; done
 *   HTTPS_PROXY=http://127.0.0.1:4140 ./my-tests
 *   kill %1; wait %1
 *
 * Differences, each needed to run it as a test: OS-chosen ports (so the forward port is read
 * from the ready file), `--drain-delay 0` (else SIGTERM waits the 5 s drain), the wait loop is
 * bounded, and `./my-tests` is two curl requests: plain http through `http_proxy` (curl ignores
 * upper-case HTTP_PROXY) and a CONNECT tunnel (`--proxytunnel`, what an HTTPS_PROXY client does;
 * no TLS origin is needed for that).
 * Checked: the ready file's JSON, both responses, `wait %1` = 0, and the `stopped` summary line.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanEnv, proxyCommand, runProxyOnce } from "./helpers/proc.ts";

const dir = mkdtempSync(join(tmpdir(), "sidecar-proxy-ci-smoke-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCRIPT = String.raw`
set -u
ready=$DIR/sp.ready
"$@" --proxy-type forward --proxy-protocol http --proxy-out-port 0 --admin-port 0 --drain-delay 0 --ready-file "$ready" >"$DIR/proxy.log" 2>"$DIR/proxy.err" &
echo $! >"$DIR/proxy.pid"
for i in $(seq 1 200); do [ -s "$ready" ] && break; sleep 0.1; done
[ -s "$ready" ] || { echo "not ready after 20 s" >&2; kill -9 %1; exit 90; }
port=$(sed -n 's/.*"forward":\[{"address":"127\.0\.0\.1","port":\([0-9]*\)}.*/\1/p' "$ready")
cp "$ready" "$DIR/sp.ready.seen"  # the proxy removes its ready file when it stops
http_proxy=http://127.0.0.1:$port curl -sS --max-time 10 -o "$DIR/plain.out" "http://127.0.0.1:$ORIGIN_PORT/plain" || echo "curl plain failed" >&2
curl -sS --max-time 10 --proxytunnel -x "http://127.0.0.1:$port" -o "$DIR/tunnel.out" "http://127.0.0.1:$ORIGIN_PORT/tunnel" || echo "curl tunnel failed" >&2
kill %1; wait %1
echo "proxy exit $?"
`;

describe("CI smoke one-liner (README)", () => {
  test("forward proxy in the background: ready file, requests through it, SIGTERM -> exit 0 and a summary line", async () => {
    const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`origin saw ${new URL(req.url).pathname}\n`) });
    try {
      const bash = Bun.spawn(["bash", "-c", SCRIPT, "ci-smoke", ...proxyCommand([])], {
        env: cleanEnv({ DIR: dir, ORIGIN_PORT: String(origin.port), http_proxy: "", https_proxy: "", NO_PROXY: "", no_proxy: "" }),
        stdout: "pipe",
        stderr: "pipe",
        stdin: "ignore",
      });
      const timer = setTimeout(() => {
        bash.kill("SIGKILL");
        // The background proxy outlives a killed bash: kill it by the pid the script wrote.
        try {
          process.kill(Number(readFileSync(join(dir, "proxy.pid"), "utf8")), "SIGKILL");
        } catch {}
      }, 45_000);
      const [stdout, stderr, exitCode] = await Promise.all([new Response(bash.stdout).text(), new Response(bash.stderr).text(), bash.exited]);
      clearTimeout(timer);
      const proxyLog = readFileSync(join(dir, "proxy.log"), "utf8");
      const context = `bash stdout: ${stdout}\nbash stderr: ${stderr}\nproxy log:\n${proxyLog}\nproxy stderr: ${readFileSync(join(dir, "proxy.err"), "utf8")}`;
      expect(stderr, context).toBe("");
      expect(exitCode, context).toBe(0);
      expect(stdout, context).toBe("proxy exit 0\n");

      // Gone once the proxy stopped (a stale file must not look like a listening proxy)...
      expect(existsSync(join(dir, "sp.ready"))).toBe(false);
      // ...and what the script saw while it ran named the bound addresses.
      const ready = JSON.parse(readFileSync(join(dir, "sp.ready.seen"), "utf8")) as Record<string, Array<{ address: string; port: number }>>;
      expect(Object.keys(ready).sort()).toEqual(["admin", "forward"]);
      const port = ready.forward?.[0]?.port ?? 0;
      expect(port).toBeGreaterThan(0);
      expect(ready.forward).toEqual([
        { address: "127.0.0.1", port },
        { address: "::1", port },
      ]);

      expect(readFileSync(join(dir, "plain.out"), "utf8")).toBe("origin saw /plain\n");
      expect(readFileSync(join(dir, "tunnel.out"), "utf8")).toBe("origin saw /tunnel\n");

      const lines = proxyLog
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const stopped = lines.at(-1);
      expect(stopped?.msg, context).toBe("stopped");
      expect(stopped).toMatchObject({ level: "info", connections: 2, errors: 0 });
      expect(stopped?.bytesUp).toBeGreaterThan(0);
      expect(stopped?.bytesDown).toBeGreaterThan(0);
    } finally {
      origin.stop(true);
    }
  });
});

const SYMLINK_SCRIPT = String.raw`
set -u
printf 'precious\n' >"$DIR/victim"
# The partial ready file's old name was the ready file's plus the pid: plant a symlink there.
( ln -s "$DIR/victim" "$DIR/r2.ready.$BASHPID.tmp"; exec "$@" --proxy-type forward --proxy-protocol http --proxy-out-port 0 --admin-port 0 --drain-delay 0 --ready-file "$DIR/r2.ready" >/dev/null 2>"$DIR/r2.err" ) &
for i in $(seq 1 200); do [ -s "$DIR/r2.ready" ] && break; sleep 0.1; done
[ -s "$DIR/r2.ready" ] || { echo "not ready after 20 s" >&2; kill -9 %1; exit 90; }
[ -L "$DIR/r2.ready" ] && echo "ready file is a symlink" >&2
cp "$DIR/r2.ready" "$DIR/r2.ready.seen"
kill %1; wait %1
echo "proxy exit $?"
`;

describe("--ready-file", () => {
  test("never written through a symlink planted at its partial file's name: the symlink's target is untouched", async () => {
    const bash = Bun.spawn(["bash", "-c", SYMLINK_SCRIPT, "ready-symlink", ...proxyCommand([])], { env: cleanEnv({ DIR: dir }), stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const timer = setTimeout(() => bash.kill("SIGKILL"), 45_000);
    const [stdout, stderr] = await Promise.all([new Response(bash.stdout).text(), new Response(bash.stderr).text(), bash.exited]);
    clearTimeout(timer);
    expect(stderr).toBe("");
    expect(stdout).toBe("proxy exit 0\n");
    expect(readFileSync(join(dir, "victim"), "utf8")).toBe("precious\n"); // it was overwritten with the ready JSON
    expect(Object.keys(JSON.parse(readFileSync(join(dir, "r2.ready.seen"), "utf8"))).sort()).toEqual(["admin", "forward"]);
  }, 60_000);
});

describe("--ready-file that cannot be written", () => {
  test("start-up fails naming the flag, before any `ready` line, and leaves no partial file", async () => {
    const target = join(dir, "a-directory");
    mkdirSync(target);
    const r = await runProxyOnce(["--proxy-type", "forward", "--proxy-protocol", "http", "--proxy-out-port", "0", "--admin-port", "0", "--log-format", "json", "--ready-file", target]);
    expect(r.exitCode).toBe(1);
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg: string; error?: string });
    expect(lines.some((l) => l.msg === "ready")).toBe(false); // it said ready, then could not start
    expect(lines.find((l) => l.msg === "cannot start")?.error).toStartWith(`cannot write --ready-file "${target}": `);
    expect(readdirSync(dir).filter((f) => f.startsWith("a-directory."))).toEqual([]); // a .tmp was left per try
  }, 30_000);
});
