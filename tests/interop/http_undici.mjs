// A Node (not Bun) client for the HTTP proxy end-to-end tests (tests/http-clients.e2e.test.ts):
// undici's ProxyAgent. It opens a CONNECT tunnel even for http: targets unless proxyTunnel is
// false, in which case http: requests go to the proxy in absolute-form.
//
// Usage: node tests/interop/http_undici.mjs PROXY_URL URL tunnel|no-tunnel [CAFILE] [--post N]
// Prints one JSON line {"status","bytes","sha256","xSha256","text"[,"sentSha256"]} and exits 0;
// an error: stderr, exit 1.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { ProxyAgent, request } = require("undici");

const args = process.argv.slice(2);
const postAt = args.indexOf("--post");
const post = postAt >= 0 ? Number(args.splice(postAt, 2)[1]) : -1;
const [proxy, url, mode, caFile] = args;
if (mode !== "tunnel" && mode !== "no-tunnel") {
  console.error("mode must be tunnel or no-tunnel");
  process.exit(1);
}
const ca = caFile ? readFileSync(caFile) : undefined;
const agent = new ProxyAgent({ uri: proxy, proxyTunnel: mode === "tunnel", ...(ca ? { requestTls: { ca } } : {}) });

/** xorshift32 bytes: any deterministic stream will do, the origin hashes what it receives. */
function pattern(n) {
  const out = Buffer.alloc(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

try {
  const body = post >= 0 ? pattern(post) : undefined;
  const res = await request(url, {
    dispatcher: agent,
    method: body ? "POST" : "GET",
    body,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const data = Buffer.from(await res.body.arrayBuffer());
  const out = {
    status: res.statusCode,
    bytes: data.length,
    sha256: createHash("sha256").update(data).digest("hex"),
    xSha256: res.headers["x-sha256"] ?? "",
    text: data.subarray(0, 4096).toString("latin1"),
  };
  if (body) out.sentSha256 = createHash("sha256").update(body).digest("hex");
  console.log(JSON.stringify(out));
  await agent.close();
} catch (e) {
  console.error(`${e?.name}: ${e?.message}${e?.cause ? ` (cause: ${e.cause.message ?? e.cause})` : ""}`);
  process.exit(1);
}
