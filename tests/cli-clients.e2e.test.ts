/**
 * The command-line clients platform engineers point at a proxy in CI (SPEC §3): GNU Wget (plain
 * http in absolute-form, https through CONNECT with the test CA, a 4 MiB download both ways
 * compared by sha256, Basic proxy auth), git (a clone over the dumb HTTP protocol through the
 * HTTP forward proxy and through SOCKS5 with the name resolved by the proxy, `socks5h://`), and
 * `openssl s_client -proxy` (CONNECT, a verified handshake, an HTTP request typed on stdin).
 *
 * Each checks exact content (bodies, sha256, the cloned commit) and that the proxy carried the
 * traffic: the origin sees `Via: 1.1 sidecar-proxy` on absolute-form requests, and the proxy's
 * connection log line names the target of a CONNECT or SOCKS tunnel.
 *
 * Client quirks handled here: wget reads /etc/wgetrc and ~/.wgetrc and keeps an HSTS cache in
 * $HOME (--no-config, --no-hsts), retries 20 times by default (--tries=1: a failure fails at
 * once), and sends Proxy-Authorization with the first request (1.21, measured with -d), so a 407
 * is only ever seen without credentials or with wrong ones. git has no configuration key for a
 * proxy bypass list: libcurl takes it from NO_PROXY / no_proxy, which clientEnv clears; $HOME is a
 * temp dir and GIT_CONFIG_NOSYSTEM=1, so no user or system configuration changes what git does.
 * s_client stops at the end of its stdin unless -ign_eof, and checks the certificate's name only
 * with -verify_hostname; -verify_return_error makes a failed verification end the handshake; it
 * prints "Verify return code: 0 (ok)" even when the CONNECT failed and there was no handshake, so
 * the tests also look for the verified peer name; its own reports follow the response's body on
 * stdout with no line break, so the body is cut by Content-Length.
 *
 * A missing client fails its tests with the Debian package to install (nothing is skipped).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, sep } from "node:path";
import { type ClientResult, describeRun, mustRun, requireTool, runClient, CLIENT_TEST_MS as T } from "./helpers/clients.ts";
import { patternChunk, sha256 } from "./helpers/net.ts";
import { HELLO, type Origin, type TlsOrigin, httpOrigin, httpsOrigin, removeTestPki, VIA, echoed, expectProxied } from "./helpers/origins.ts";
import { type LogLine, type RunningProxy, killAll, startProxy } from "./helpers/proxy.ts";

/** RFC 6761: `.invalid` never resolves, anywhere. */
const NO_SUCH_HOST = "nonexistent.invalid";
/** "A few MiB": more than any socket buffer, so the relay's backpressure is exercised. */
const DOWNLOAD_BYTES = 4 * 1024 * 1024;
const AUTH = { user: "ci-user", password: "s3cret-pass" };

let http4: Origin;
let https4: TlsOrigin;
let httpFwd: RunningProxy; // forward HTTP proxy, no auth
let authFwd: RunningProxy; // forward HTTP proxy with --auth
let socksFwd: RunningProxy; // forward SOCKS proxy
let work: string;
let home: string; // $HOME of every client: no ~/.wgetrc, ~/.gitconfig or HSTS cache of the machine's
const extraServers: Array<{ stop(): void }> = [];

beforeAll(async () => {
  http4 = httpOrigin("127.0.0.1");
  https4 = httpsOrigin("127.0.0.1");
  work = mkdtempSync(join(tmpdir(), "sidecar-cli-clients-"));
  home = join(work, "home");
  mkdirSync(home);
  [httpFwd, authFwd, socksFwd] = await Promise.all([
    startProxy(["--proxy-type", "forward", "--proxy-protocol", "http"]),
    startProxy(["--proxy-type", "forward", "--proxy-protocol", "http", "--auth", `${AUTH.user}:${AUTH.password}`]),
    startProxy(["--proxy-type", "forward", "--proxy-protocol", "socks"]),
  ]);
}, 60_000);

afterAll(() => {
  killAll();
  http4?.stop();
  https4?.stop();
  for (const s of extraServers) s.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  removeTestPki(); // the test CA's key must not stay behind in /tmp
});

// ---------------------------------------------------------------------------------------------
// helpers

const proxyUrl = (p: RunningProxy) => `http://127.0.0.1:${p.ports.forward}`;

/** A connection log line of `p`'s forward listener, logged after `since`, whose target is host:port. */
function targetLogged(p: RunningProxy, since: number, host: string, port: number): Promise<LogLine> {
  const target = `${host}:${port}`;
  return p.waitForLog(
    (l) => l.msg === "connection" && p.logs.indexOf(l) >= since && l.listener === "forward" && l.target === target,
    10_000,
    `a forward connection to ${target}`,
  );
}

function hexSha256(data: Uint8Array): string {
  const h = sha256();
  h.update(data);
  return h.hex();
}

/** Fails the test with the client's output unless it failed (exit code other than 0, not killed). */
function expectFailed(cmd: string[], r: ClientResult): void {
  if (r.exitCode === 0 || r.timedOut) throw new Error(`expected the client to fail:\n${describeRun(cmd, r)}`);
}

// ---------------------------------------------------------------------------------------------
// GNU Wget

/** wget through `p` for http and https; -nv still prints errors (and the status line of a 407). */
function wget(p: RunningProxy, args: string[]): string[] {
  requireTool("wget", 'the "wget" package');
  const proxy = proxyUrl(p);
  return ["wget", "--no-config", "--no-hsts", "-nv", "--tries=1", "--timeout=30", "-e", "use_proxy=yes", "-e", `http_proxy=${proxy}`, "-e", `https_proxy=${proxy}`, ...args];
}

const wgetEnv = () => ({ HOME: home });

describe("GNU Wget (-e use_proxy=yes -e http_proxy=... -e https_proxy=...)", () => {
  test("http: in absolute-form (Via seen by the origin), exact body", async () => {
    const since = httpFwd.logs.length;
    const r = await mustRun(wget(httpFwd, ["-O", "-", http4.url("/echo-headers")]), { env: wgetEnv() });
    const seen = echoed(r.stdout);
    expectProxied(seen);
    expect(seen.host).toBe(`127.0.0.1:${http4.port}`);
    const hello = await mustRun(wget(httpFwd, ["-O", "-", http4.url("/hello")]), { env: wgetEnv() });
    expect(hello.stdout).toBe(HELLO);
    await targetLogged(httpFwd, since, "127.0.0.1", http4.port);
  }, T);

  test("https: through CONNECT, certificate verified against the test CA (--ca-certificate)", async () => {
    const since = httpFwd.logs.length;
    const r = await mustRun(wget(httpFwd, ["--ca-certificate", https4.caFile, "-O", "-", `https://localhost:${https4.port}/hello`]), { env: wgetEnv() });
    expect(r.stdout).toBe(HELLO);
    await targetLogged(httpFwd, since, "localhost", https4.port);
  }, T);

  for (const scheme of ["http", "https"] as const) {
    test(`${DOWNLOAD_BYTES / 1024 / 1024} MiB download over ${scheme}: (${scheme === "http" ? "absolute-form" : "CONNECT"}) arrives intact (sha256)`, async () => {
      const seed = scheme === "http" ? 51 : 52;
      const expected = hexSha256(patternChunk(seed, DOWNLOAD_BYTES));
      const out = join(work, `wget-${scheme}.bin`);
      const url = scheme === "http" ? http4.url(`/bytes?n=${DOWNLOAD_BYTES}&seed=${seed}`) : `https://localhost:${https4.port}/bytes?n=${DOWNLOAD_BYTES}&seed=${seed}`;
      const since = httpFwd.logs.length;
      await mustRun(wget(httpFwd, ["--ca-certificate", https4.caFile, "-O", out, url]), { env: wgetEnv() });
      const got = readFileSync(out);
      expect(got.byteLength).toBe(DOWNLOAD_BYTES);
      expect(hexSha256(got)).toBe(expected);
      const line = await targetLogged(httpFwd, since, scheme === "http" ? "127.0.0.1" : "localhost", scheme === "http" ? http4.port : https4.port);
      expect(line.bytesDown as number).toBeGreaterThan(DOWNLOAD_BYTES);
    }, T);
  }

  test("--proxy-user/--proxy-password with --auth: 407 without them or with a wrong password, served with them (http and https)", async () => {
    const url = http4.url("/echo-headers");
    const none = wget(authFwd, ["-O", "-", url]);
    const noneRun = await runClient(none, { env: wgetEnv() });
    expectFailed(none, noneRun);
    expect(noneRun.stderr).toContain("ERROR 407: Proxy Authentication Required");
    const wrong = wget(authFwd, [`--proxy-user=${AUTH.user}`, "--proxy-password=not-the-password", "-O", "-", url]);
    const wrongRun = await runClient(wrong, { env: wgetEnv() });
    expectFailed(wrong, wrongRun);
    expect(wrongRun.stderr).toContain("ERROR 407: Proxy Authentication Required");

    const creds = [`--proxy-user=${AUTH.user}`, `--proxy-password=${AUTH.password}`];
    const ok = await mustRun(wget(authFwd, [...creds, "-O", "-", url]), { env: wgetEnv() });
    expectProxied(echoed(ok.stdout));
    const since = authFwd.logs.length;
    const tls = await mustRun(wget(authFwd, [...creds, "--ca-certificate", https4.caFile, "-O", "-", `https://localhost:${https4.port}/hello`]), { env: wgetEnv() });
    expect(tls.stdout).toBe(HELLO);
    await targetLogged(authFwd, since, "localhost", https4.port);
  }, T);
});

// ---------------------------------------------------------------------------------------------
// git over the dumb HTTP protocol

interface StaticOrigin {
  readonly port: number;
  /** Path and Via of every request, in arrival order. */
  readonly seen: Array<{ path: string; via: string | null }>;
  stop(): void;
}

/**
 * Static files under `root` on 127.0.0.1 (GET and HEAD; 404 for anything else or outside root):
 * what git's dumb HTTP protocol needs, as a plain web server serves a repository.
 */
function staticOrigin(root: string): StaticOrigin {
  const seen: Array<{ path: string; via: string | null }> = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const { pathname } = new URL(req.url);
      seen.push({ path: pathname, via: req.headers.get("via") });
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("GET only\n", { status: 405 });
      const path = resolve(root, `.${decodeURIComponent(pathname)}`);
      if (!path.startsWith(root + sep)) return new Response("not found\n", { status: 404 });
      try {
        if (!statSync(path).isFile()) return new Response("not found\n", { status: 404 });
      } catch {
        return new Response("not found\n", { status: 404 });
      }
      return new Response(Bun.file(path), { headers: { "Content-Type": "application/octet-stream" } });
    },
  });
  const origin = { port: server.port!, seen, stop: () => void server.stop(true) };
  extraServers.push(origin);
  return origin;
}

/** Environment for git: no user or system configuration, never a prompt. */
const gitEnv = () => ({ HOME: home, GIT_CONFIG_NOSYSTEM: "1", GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" });

async function git(args: string[]): Promise<string> {
  requireTool("git", 'the "git" package');
  return (await mustRun(["git", ...args], { env: gitEnv() })).stdout.trim();
}

/** The README of the source repository: checked byte for byte in each clone. */
const README_TEXT = "cloned through sidecar-proxy\n";

let gitSource: Promise<{ origin: StaticOrigin; head: string }> | undefined;

/**
 * A small repository made once: a packed first commit (a 256 KiB file among others) and a loose
 * second one, so a clone fetches both a pack and loose objects; `git update-server-info` writes
 * info/refs and objects/info/packs for dumb HTTP, and its .git is served as static files.
 */
function source(): Promise<{ origin: StaticOrigin; head: string }> {
  gitSource ??= (async () => {
    const dir = join(work, "source");
    mkdirSync(dir);
    const id = ["-c", "user.name=sidecar test", "-c", "user.email=test@localhost", "-C", dir];
    await git(["-c", "init.defaultBranch=main", "init", "-q", dir]);
    writeFileSync(join(dir, "README"), README_TEXT);
    writeFileSync(join(dir, "blob.bin"), patternChunk(61, 256 * 1024));
    await git([...id, "add", "README", "blob.bin"]);
    await git([...id, "commit", "-q", "-m", "first"]);
    await git([...id, "repack", "-a", "-d", "-q"]);
    writeFileSync(join(dir, "second.txt"), "second commit\n");
    await git([...id, "add", "second.txt"]);
    await git([...id, "commit", "-q", "-m", "second"]);
    await git([...id, "update-server-info"]);
    return { origin: staticOrigin(join(dir, ".git")), head: await git(["-C", dir, "rev-parse", "HEAD"]) };
  })();
  return gitSource;
}

/** Clones through `proxy` (a git http.proxy value) and checks the clone: HEAD and a file's bytes. */
async function cloneThrough(proxy: string, host: string, name: string): Promise<void> {
  const { origin, head } = await source();
  const dest = join(work, name);
  await git(["-c", `http.proxy=${proxy}`, "clone", "-q", `http://${host}:${origin.port}/`, dest]);
  expect(await git(["-C", dest, "rev-parse", "HEAD"])).toBe(head);
  expect(readFileSync(join(dest, "README"), "utf8")).toBe(README_TEXT);
  expect(await git(["-C", dest, "fsck", "--strict", "--no-progress"])).toBe("");
}

describe("git clone over dumb HTTP", () => {
  test("-c http.proxy=http://127.0.0.1:PORT: every request in absolute-form (Via seen by the origin), HEAD commit equal", async () => {
    const { origin } = await source();
    const since = httpFwd.logs.length;
    const first = origin.seen.length;
    await cloneThrough(proxyUrl(httpFwd), "127.0.0.1", "clone-http");
    const requests = origin.seen.slice(first);
    expect(requests.map((r) => r.path)).toContain("/info/refs"); // the dumb protocol's first step
    expect(requests.filter((r) => !r.via?.includes(VIA))).toEqual([]);
    await targetLogged(httpFwd, since, "127.0.0.1", origin.port);
  }, T);

  test("-c http.proxy=socks5h://127.0.0.1:PORT: the proxy resolves localhost and tunnels, HEAD commit equal", async () => {
    const { origin } = await source();
    const since = socksFwd.logs.length;
    const first = origin.seen.length;
    await cloneThrough(`socks5h://127.0.0.1:${socksFwd.ports.forward}`, "localhost", "clone-socks");
    const requests = origin.seen.slice(first);
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.filter((r) => r.via !== null)).toEqual([]); // a tunnel: nobody touched the HTTP
    const line = await targetLogged(socksFwd, since, "localhost", origin.port);
    expect(line.protocol).toBe("socks");
  }, T);
});

// ---------------------------------------------------------------------------------------------
// openssl s_client -proxy

/** s_client through `p` to `host:port`, the certificate checked against the test CA and for localhost. */
function sClient(p: RunningProxy, host: string, port: number, extra: string[] = []): string[] {
  requireTool("openssl", 'the "openssl" package');
  return [
    "openssl", "s_client",
    "-proxy", `127.0.0.1:${p.ports.forward}`,
    "-connect", `${host}:${port}`,
    "-servername", "localhost",
    "-verify_hostname", "localhost",
    "-CAfile", https4.caFile,
    "-verify_return_error",
    "-ign_eof", // wait for the origin to close, not for stdin's end
    ...extra,
  ];
}

/** The request typed on stdin: `Connection: close`, so the origin ends the session after its answer. */
const helloRequest = () => `GET /hello HTTP/1.1\r\nHost: localhost:${https4.port}\r\nConnection: close\r\n\r\n`;

/**
 * The handshake was verified for localhost. "Verify return code: 0 (ok)" alone proves nothing:
 * s_client prints it too when the CONNECT failed and no handshake took place (OpenSSL 3.0).
 */
function expectVerified(r: ClientResult): void {
  expect(r.stdout).toContain("Verify return code: 0 (ok)");
  expect(r.stdout).toContain("Verified peername: localhost");
  expect(r.stdout).toContain("issuer=CN = sidecar-proxy test CA");
}

/** The HTTP response in s_client's output (after the handshake report): status and body by Content-Length. */
function responseIn(cmd: string[], r: ClientResult): { status: number; body: string } {
  const start = r.stdout.indexOf("HTTP/1.1 ");
  const headEnd = r.stdout.indexOf("\r\n\r\n", start);
  if (start < 0 || headEnd < 0) throw new Error(`no HTTP response in s_client's output:\n${describeRun(cmd, r)}`);
  const head = r.stdout.slice(start, headEnd);
  const length = Number(/^content-length:\s*(\d+)\s*$/im.exec(head)?.[1]);
  if (!Number.isInteger(length)) throw new Error(`no Content-Length in the response:\n${describeRun(cmd, r)}`);
  return { status: Number(head.slice(9, 12)), body: r.stdout.slice(headEnd + 4, headEnd + 4 + length) };
}

describe("openssl s_client -proxy (HTTP CONNECT)", () => {
  test("handshake verified (Verify return code: 0), a request on stdin gets the origin's exact body", async () => {
    const since = httpFwd.logs.length;
    const cmd = sClient(httpFwd, "localhost", https4.port);
    const r = await mustRun(cmd, { input: helloRequest() });
    expectVerified(r);
    expect(responseIn(cmd, r)).toEqual({ status: 200, body: HELLO });
    await targetLogged(httpFwd, since, "localhost", https4.port);
  }, T);

  test("-proxy_user/-proxy_pass with --auth (and refused without them)", async () => {
    const refused = sClient(authFwd, "localhost", https4.port);
    const refusedRun = await runClient(refused, { input: helloRequest() });
    expectFailed(refused, refusedRun);
    expect(refusedRun.stderr).toContain("HTTP CONNECT failed, reason= 407 Proxy Authentication Required");

    const since = authFwd.logs.length;
    const cmd = sClient(authFwd, "localhost", https4.port, ["-proxy_user", AUTH.user, "-proxy_pass", `pass:${AUTH.password}`]);
    const r = await mustRun(cmd, { input: helloRequest() });
    expectVerified(r);
    expect(responseIn(cmd, r)).toEqual({ status: 200, body: HELLO });
    await targetLogged(authFwd, since, "localhost", https4.port);
  }, T);

  test(`a target that does not resolve (${NO_SUCH_HOST}): the proxy answers 502 and s_client gives up`, async () => {
    const cmd = sClient(httpFwd, NO_SUCH_HOST, 443);
    const r = await runClient(cmd, { input: helloRequest() });
    expectFailed(cmd, r);
    expect(r.stderr).toContain("HTTP CONNECT failed, reason= 502 Bad Gateway");
    expect(r.stdout).not.toContain("Verified peername");
  }, T);
});
