/**
 * Origin servers for end-to-end tests (SOCKS, HTTP forward/reverse, CONNECT): one HTTP origin and
 * one HTTPS origin with the same routes, on loopback ports chosen by the OS, plus a test CA that
 * every real client can be pointed at (curl --cacert, Python verify=, Go x509 pool, a Java
 * truststore), and a listener whose accept queue is full (connects to it hang: "connecting").
 *
 * Routes:
 *   GET  /hello                 "hello from origin"
 *   GET  /bytes?n=N&seed=S      N deterministic bytes (patternChunk), header X-Sha256 = sha256(body)
 *   POST /sha256                sha256 hex of the request body (streamed, any size)
 *   GET  /echo-headers          JSON object of the request headers (lower-case names)
 *   GET  /ip                    the client address as the origin sees it (text)
 */
import { expect } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RawClient, patternChunk, sha256 } from "./net.ts";

export interface Origin {
  readonly port: number;
  readonly hostname: string;
  /** "http://127.0.0.1:PORT/path" (IPv6 hosts in brackets). */
  url(path?: string): string;
  /** Requests served so far (any route). */
  readonly requests: number;
  stop(): void;
}

export interface TlsOrigin extends Origin {
  /** PEM file of the CA that signed the origin's certificate. */
  readonly caFile: string;
}

/** The body of GET /hello. */
export const HELLO = "hello from origin";
const BYTES_MAX = 1024 * 1024 * 1024; // /bytes is for tests: refuse anything absurd rather than OOM

async function route(req: Request, server: Bun.Server<undefined>): Promise<Response> {
  const url = new URL(req.url);
  switch (url.pathname) {
    case "/hello":
      return new Response(HELLO, { headers: { "Content-Type": "text/plain" } });
    case "/bytes": {
      const n = Number(url.searchParams.get("n") ?? "0");
      const seed = Number(url.searchParams.get("seed") ?? "1");
      if (!Number.isInteger(n) || n < 0 || n > BYTES_MAX || !Number.isInteger(seed)) return new Response("bad n/seed\n", { status: 400 });
      const body = patternChunk(seed, n);
      const h = sha256();
      h.update(body);
      return new Response(body, { headers: { "Content-Type": "application/octet-stream", "X-Sha256": h.hex() } });
    }
    case "/sha256": {
      if (req.method !== "POST") return new Response("POST only\n", { status: 405 });
      const h = sha256();
      let bytes = 0;
      if (req.body) {
        for await (const chunk of req.body) {
          h.update(chunk);
          bytes += chunk.byteLength;
        }
      }
      return new Response(h.hex(), { headers: { "Content-Type": "text/plain", "X-Body-Bytes": String(bytes) } });
    }
    case "/echo-headers": {
      const headers: Record<string, string> = {};
      req.headers.forEach((v, k) => (headers[k] = v));
      return Response.json(headers);
    }
    case "/ip":
      return new Response(server.requestIP(req)?.address ?? "unknown", { headers: { "Content-Type": "text/plain" } });
    default:
      return new Response("not found\n", { status: 404 });
  }
}

function serve(hostname: string, tls: { cert: string; key: string } | undefined, caFile?: string): Origin & { caFile?: string } {
  let requests = 0;
  const server = Bun.serve({
    hostname,
    port: 0,
    // Large POST bodies (tests send 10 MiB and more) and slow proxies must not hit Bun's defaults.
    maxRequestBodySize: 2 * BYTES_MAX,
    idleTimeout: 60,
    ...(tls ? { tls } : {}),
    fetch(req, srv) {
      requests++;
      return route(req, srv);
    },
  });
  const port = server.port!;
  const scheme = tls ? "https" : "http";
  const hostPart = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    port,
    hostname,
    url: (path = "/") => `${scheme}://${hostPart}:${port}${path.startsWith("/") ? path : `/${path}`}`,
    get requests() {
      return requests;
    },
    stop: () => void server.stop(true),
    ...(caFile ? { caFile } : {}),
  };
}

/** An HTTP origin on `hostname` (127.0.0.1, ::1 or localhost), port from the OS. */
export function httpOrigin(hostname = "127.0.0.1"): Origin {
  return serve(hostname, undefined);
}

export interface TestPki {
  readonly dir: string;
  /** CA certificate (PEM): what clients trust. */
  readonly caFile: string;
  /** Server certificate (PEM) for localhost, 127.0.0.1 and ::1, and its key. */
  readonly certFile: string;
  readonly keyFile: string;
}

let pki: TestPki | undefined;

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  if (r.exitCode !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}\n(install the "openssl" package)`);
  }
}

/**
 * A self-signed CA and a server certificate signed by it, made once per process with the openssl
 * CLI in a fresh temp dir. SAN covers localhost, 127.0.0.1 and ::1: Go and Java check only the SAN,
 * never the CN. Key usage / EKU are set so strict verifiers (Java, Go) accept the chain.
 */
export function testPki(): TestPki {
  if (pki) return pki;
  if (!Bun.which("openssl")) throw new Error('openssl CLI not found: install the "openssl" package');
  const dir = mkdtempSync(join(tmpdir(), "sidecar-pki-"));
  openssl(
    [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
      "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=sidecar-proxy test CA",
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], dir);
  writeFileSync(
    join(dir, "server.ext"),
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
      "",
    ].join("\n"),
  );
  openssl(
    ["x509", "-req", "-sha256", "-days", "30", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-extfile", "server.ext"],
    dir,
  );
  pki = { dir, caFile: join(dir, "ca.pem"), certFile: join(dir, "server.pem"), keyFile: join(dir, "server.key") };
  return pki;
}

/** Deletes the test CA dir (call from afterAll: `bun test` runs no process exit hooks). */
export function removeTestPki(): void {
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
  pki = undefined;
  javaStore = undefined;
}

let javaStore: { path: string; password: string } | undefined;

/** The test CA in a PKCS12 truststore for Java (-Djavax.net.ssl.trustStore=...), made once. */
export function javaTrustStore(): { path: string; password: string; jvmArgs: string[] } {
  if (!javaStore) {
    const { dir, caFile } = testPki();
    if (!Bun.which("keytool")) throw new Error('keytool not found: install a JDK (e.g. the "openjdk-17-jdk-headless" package)');
    const path = join(dir, "trust.p12");
    const password = "changeit";
    const r = Bun.spawnSync(
      ["keytool", "-importcert", "-noprompt", "-alias", "sidecar-test-ca", "-file", caFile, "-keystore", path, "-storetype", "PKCS12", "-storepass", password],
      { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
    );
    if (r.exitCode !== 0) throw new Error(`keytool -importcert failed: ${r.stdout.toString()}${r.stderr.toString()}`);
    javaStore = { path, password };
  }
  const { path, password } = javaStore;
  return { path, password, jvmArgs: [`-Djavax.net.ssl.trustStore=${path}`, `-Djavax.net.ssl.trustStorePassword=${password}`, "-Djavax.net.ssl.trustStoreType=PKCS12"] };
}

/** What the proxy adds to `Via` on requests it forwards (lib/http/hop.ts). */
export const VIA = "1.1 sidecar-proxy";

/** The request headers the origin saw, from a client's body of its /echo-headers route. */
export function echoed(text: string): Record<string, string> {
  return JSON.parse(text) as Record<string, string>;
}

/** Absolute-form through the proxy: the origin saw our Via and no proxy-only fields. */
export function expectProxied(headers: Record<string, string>): void {
  expect(headers.via).toContain(VIA);
  expect(headers["proxy-connection"]).toBeUndefined();
  expect(headers["proxy-authorization"]).toBeUndefined();
}

/** The same routes over TLS, with a certificate for localhost / 127.0.0.1 / ::1 from testPki(). */
export function httpsOrigin(hostname = "127.0.0.1"): TlsOrigin {
  const { caFile, certFile, keyFile } = testPki();
  const tls = { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
  return serve(hostname, tls, caFile) as TlsOrigin;
}

/**
 * A loopback port (127.0.0.1, or ::1) whose listener never accepts and whose accept queue is
 * full: a TCP connect to it neither succeeds nor is refused, it hangs (the kernel drops the
 * SYNs), which is how a test holds a proxy in its "connecting" phase or makes it hit its connect
 * timeout without naming any non-loopback address. Bun's listeners accept by themselves and
 * take no backlog, so the socket is held by a small Python process (listen(0), one queued
 * connection of its own). The process exits when stop() closes its stdin (or is killed).
 */
export async function stalledPort(timeoutMs = 15_000, hostname: "127.0.0.1" | "::1" = "127.0.0.1"): Promise<{ port: number; stop(): void }> {
  const python = "/usr/bin/python3";
  if (!(await Bun.file(python).exists())) throw new Error("/usr/bin/python3 not found: install the python3 package");
  const family = hostname === "::1" ? "socket.AF_INET6" : "socket.AF_INET";
  const script = [
    "import socket, sys",
    `s = socket.socket(${family}, socket.SOCK_STREAM)`,
    `s.bind(('${hostname}', 0))`,
    "s.listen(0)",
    "port = s.getsockname()[1]",
    // Fill the accept queue with our own connection, then check that the next connect hangs.
    `held = socket.create_connection(('${hostname}', port), timeout=5)`,
    `probe = socket.socket(${family}); probe.settimeout(0.5)`,
    "try:",
    `    probe.connect(('${hostname}', port)); print('accepting', flush=True); sys.exit(1)`,
    "except socket.timeout:",
    "    pass",
    "probe.close()",
    "print(port, flush=True)",
    "sys.stdin.read()",
  ].join("\n");
  const proc = Bun.spawn([python, "-c", script], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  clearTimeout(timer);
  reader.releaseLock();
  const port = Number(text.trim());
  if (!Number.isInteger(port) || port <= 0) {
    proc.kill("SIGKILL");
    throw new Error(`stalledPort: could not make a listener with a full accept queue (got ${JSON.stringify(text)}; stderr ${await new Response(proc.stderr).text()})`);
  }
  return {
    port,
    stop: () => {
      try {
        proc.stdin.end();
      } catch {
        // already gone
      }
      proc.kill("SIGKILL");
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP on the wire: a scripted TCP origin that records every byte it receives (to assert what
// a proxy forwarded, or that it forwarded nothing), and a parser for the responses a RawClient
// gets back (status, fields, de-chunked body, and whether each response was complete).

export interface RawOriginConn {
  /** Everything this connection has received so far (Latin-1, one char per octet). */
  readonly received: string;
  /** Requests answered so far on this connection (the script's own counter). */
  answered: number;
  write(data: string | Uint8Array): void;
  /** Closes the connection once everything written has been sent. */
  end(): void;
}

export interface RawOrigin {
  readonly port: number;
  readonly hostname: string;
  /** "http://HOST:PORT/path" (IPv6 hosts in brackets). */
  url(path?: string): string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Of those, the ones closed (by either side). */
  readonly closedConnections: number;
  /** Everything received on every connection, in accept order, concatenated (Latin-1). */
  received(): string;
  stop(): void;
}

interface RawConnState extends RawOriginConn {
  text: string;
  queue: Uint8Array[];
  endAfterFlush: boolean;
  closed: boolean;
}

/**
 * A TCP origin whose script sees every chunk: `onData(conn)` is called after each one with all
 * of that connection's bytes so far, and decides what to answer and when (or never). When the
 * peer half-closes, the origin closes once its own writes are out.
 */
export function rawOrigin(onData: (conn: RawOriginConn) => void, hostname = "127.0.0.1"): RawOrigin {
  const all: RawConnState[] = [];
  const flushRaw = (s: Bun.Socket<RawConnState>) => {
    const c = s.data;
    while (c.queue.length > 0) {
      const head = c.queue[0]!;
      const n = s.write(head);
      if (n < 0) return;
      if (n < head.byteLength) {
        c.queue[0] = head.subarray(n);
        return;
      }
      c.queue.shift();
    }
    if (c.endAfterFlush) s.end();
  };
  const server = Bun.listen<RawConnState>({
    hostname,
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        const conn: RawConnState = {
          text: "",
          queue: [],
          endAfterFlush: false,
          closed: false,
          answered: 0,
          get received() {
            return conn.text;
          },
          write(data) {
            conn.queue.push(typeof data === "string" ? Buffer.from(data, "latin1") : data);
            flushRaw(s);
          },
          end() {
            conn.endAfterFlush = true;
            flushRaw(s);
          },
        };
        s.data = conn;
        all.push(conn);
      },
      data(s, chunk) {
        s.data.text += Buffer.from(chunk).toString("latin1");
        onData(s.data);
      },
      drain: flushRaw,
      end(s) {
        s.data.end();
      },
      close(s) {
        s.data.closed = true;
      },
    },
  });
  const hostPart = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    port: server.port,
    hostname,
    url: (path = "/") => `http://${hostPart}:${server.port}${path.startsWith("/") ? path : `/${path}`}`,
    get connections() {
      return all.length;
    },
    get closedConnections() {
      return all.filter((c) => c.closed).length;
    },
    received: () => all.map((c) => c.text).join(""),
    stop: () => server.stop(true),
  };
}

/** Number of complete request heads (CRLFCRLF) in a connection's bytes: for bodiless requests. */
export function headCount(received: string): number {
  return received.split("\r\n\r\n").length - 1;
}

/** A rawOrigin script: answers every bodiless request head with `response` (keep-alive). */
export function answerEachHead(response: string): (conn: RawOriginConn) => void {
  return (conn) => {
    const heads = headCount(conn.received);
    while (conn.answered < heads) {
      conn.answered++;
      conn.write(response);
    }
  };
}

export interface WireResponse {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  /** Field lines in order, names as received. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The body, de-chunked when chunked. */
  readonly body: Buffer;
  /** False when the connection ended (or the data stops) before the body's end. */
  readonly complete: boolean;
  /** Values of a field (case-insensitive), joined with ", "; undefined when absent. */
  header(name: string): string | undefined;
}

function wireResponse(version: string, status: number, reason: string, headers: Array<[string, string]>, body: Buffer, complete: boolean): WireResponse {
  return {
    version,
    status,
    reason,
    headers,
    body,
    complete,
    header(name) {
      const v = headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, val]) => val);
      return v.length === 0 ? undefined : v.join(", ");
    },
  };
}

/**
 * Parses the HTTP/1.1 responses in `data`, in order. `methods[i]` is the method of the i-th
 * request (HEAD has no body; a 2xx to CONNECT and a 101 end the HTTP part: the bytes after it
 * are returned in `rest`). 1xx interim responses (not 101) are returned too and do not use up a
 * method. `eof`: the connection has ended, so a body delimited by close is complete.
 */
export function parseResponses(data: Uint8Array, methods: readonly string[] = [], eof = false): { responses: WireResponse[]; rest: Buffer } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const responses: WireResponse[] = [];
  let pos = 0;
  let m = 0;
  for (;;) {
    const headEnd = buf.indexOf("\r\n\r\n", pos, "latin1");
    if (headEnd < 0) break;
    const lines = buf.subarray(pos, headEnd).toString("latin1").split("\r\n");
    const statusLine = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
    if (!statusLine) throw new Error(`not a status line: ${JSON.stringify(lines[0])} (at byte ${pos})`);
    const headers: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`malformed field line in response: ${JSON.stringify(line)}`);
      headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    const status = Number(statusLine[2]);
    const version = statusLine[1]!;
    const reason = statusLine[3] ?? "";
    const bodyStart = headEnd + 4;
    const get = (n: string) => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
    if (status >= 100 && status < 200 && status !== 101) {
      responses.push(wireResponse(version, status, reason, headers, Buffer.alloc(0), true));
      pos = bodyStart;
      continue;
    }
    const method = (methods[m++] ?? "GET").toUpperCase();
    if (status === 101 || (method === "CONNECT" && status >= 200 && status < 300)) {
      responses.push(wireResponse(version, status, reason, headers, Buffer.alloc(0), true));
      return { responses, rest: buf.subarray(bodyStart) };
    }
    if (method === "HEAD" || status === 204 || status === 304) {
      responses.push(wireResponse(version, status, reason, headers, Buffer.alloc(0), true));
      pos = bodyStart;
      continue;
    }
    const te = get("transfer-encoding").join(",").toLowerCase();
    const cl = get("content-length");
    if (te.includes("chunked")) {
      const parts: Buffer[] = [];
      let p = bodyStart;
      let done = false;
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", p, "latin1");
        if (lineEnd < 0) break;
        const size = Number.parseInt(buf.subarray(p, lineEnd).toString("latin1").split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size)) throw new Error("bad chunk size in response");
        if (size === 0) {
          // trailers until an empty line
          const trailerEnd = buf.indexOf("\r\n\r\n", lineEnd, "latin1");
          const emptyTrailer = buf.subarray(lineEnd, lineEnd + 4).toString("latin1") === "\r\n\r\n";
          if (emptyTrailer) {
            p = lineEnd + 4;
            done = true;
          } else if (trailerEnd >= 0) {
            p = trailerEnd + 4;
            done = true;
          }
          break;
        }
        if (lineEnd + 2 + size + 2 > buf.length) {
          parts.push(buf.subarray(lineEnd + 2, Math.min(buf.length, lineEnd + 2 + size)));
          p = buf.length;
          break;
        }
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      responses.push(wireResponse(version, status, reason, headers, Buffer.concat(parts), done));
      if (!done) return { responses, rest: Buffer.alloc(0) };
      pos = p;
      continue;
    }
    if (cl.length > 0) {
      const len = Number(cl[0]);
      const end = bodyStart + len;
      const complete = end <= buf.length;
      responses.push(wireResponse(version, status, reason, headers, Buffer.from(buf.subarray(bodyStart, Math.min(end, buf.length))), complete));
      if (!complete) return { responses, rest: Buffer.alloc(0) };
      pos = end;
      continue;
    }
    // Delimited by close.
    responses.push(wireResponse(version, status, reason, headers, Buffer.from(buf.subarray(bodyStart)), eof));
    return { responses, rest: Buffer.alloc(0) };
  }
  return { responses, rest: buf.subarray(pos) };
}

export interface RawExchange {
  readonly client: RawClient;
  /** Every response parsed, interim 1xx included. */
  readonly responses: WireResponse[];
  /** Final responses only (status >= 200, or 101). */
  readonly finals: WireResponse[];
  /** Bytes after a CONNECT 2xx or a 101 (tunnel data). */
  readonly rest: Buffer;
  /** Whether the proxy had ended the connection (FIN or close) when we stopped waiting. */
  readonly ended: boolean;
}

/** Parses what a RawClient holds so far (see parseResponses). */
export function responsesOf(client: RawClient, methods: readonly string[] = []): Omit<RawExchange, "client"> {
  const ended = client.closed || client.gotFin;
  const { responses, rest } = parseResponses(client.bytes(), methods, ended);
  return { responses, finals: responses.filter((r) => r.status >= 200 || r.status === 101), rest, ended };
}

/**
 * Waits (bounded) until `client` holds `count` complete final responses, or the connection has
 * ended, and returns what it got.
 */
export async function awaitResponses(client: RawClient, count = 1, methods: readonly string[] = [], timeoutMs = 20_000): Promise<RawExchange> {
  const done = () => {
    if (client.closed || client.gotFin) return true;
    const { finals } = responsesOf(client, methods);
    return finals.length >= count && finals[count - 1]!.complete;
  };
  try {
    await client.waitFor(done, timeoutMs, `${count} response(s)`);
  } catch (err) {
    throw new Error(`${(err as Error).message}; got so far (${client.receivedBytes} bytes): ${JSON.stringify(client.text().slice(0, 300))}`);
  }
  return { client, ...responsesOf(client, methods) };
}

/** Connects to 127.0.0.1:port (or `host`), writes `request` and waits for `count` responses. */
export async function rawExchange(
  port: number,
  request: string | Uint8Array,
  opts: { host?: string; count?: number; methods?: readonly string[]; timeoutMs?: number } = {},
): Promise<RawExchange> {
  const client = await RawClient.connect(port, opts.host ?? "127.0.0.1");
  await client.write(typeof request === "string" ? Buffer.from(request, "latin1") : request);
  return awaitResponses(client, opts.count ?? 1, opts.methods ?? [], opts.timeoutMs ?? 20_000);
}
