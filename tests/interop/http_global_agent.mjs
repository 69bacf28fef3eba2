// A Node (not Bun) client for the HTTP proxy end-to-end tests (tests/http-clients.e2e.test.ts):
// `global-agent` patches http/https globally from GLOBAL_AGENT_HTTP_PROXY, the way an app adopts
// a proxy without code changes. http: URLs go to the proxy in absolute-form, https: URLs through
// a CONNECT tunnel.
//
// Usage: GLOBAL_AGENT_HTTP_PROXY=http://127.0.0.1:P node tests/interop/http_global_agent.mjs URL [CAFILE]
// (global-agent 4.1.3 ignores a per-request `ca` for https through the proxy: give the test CA
// with NODE_EXTRA_CA_CERTS instead.)
// Prints one JSON line {"status","bytes","sha256","xSha256","text"} and exits 0; an error: stderr, exit 1.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { bootstrap } = require("global-agent");

if (!process.env.GLOBAL_AGENT_HTTP_PROXY) {
  console.error("GLOBAL_AGENT_HTTP_PROXY is not set");
  process.exit(1);
}
if (!bootstrap()) {
  console.error("global-agent did not bootstrap");
  process.exit(1);
}

const [url, caFile] = process.argv.slice(2);
const mod = url.startsWith("https:") ? https : http;
const options = caFile ? { ca: readFileSync(caFile) } : {};
const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 60_000);
const req = mod.get(url, options, (res) => {
  const hash = createHash("sha256");
  const head = [];
  let bytes = 0;
  res.on("data", (chunk) => {
    hash.update(chunk);
    if (bytes < 4096) head.push(chunk.subarray(0, 4096 - bytes));
    bytes += chunk.length;
  });
  res.on("end", () => {
    clearTimeout(timer);
    console.log(
      JSON.stringify({
        status: res.statusCode,
        bytes,
        sha256: hash.digest("hex"),
        xSha256: res.headers["x-sha256"] ?? "",
        text: Buffer.concat(head).toString("latin1"),
      }),
    );
  });
  res.on("error", (e) => {
    console.error(`response error: ${e.message}`);
    process.exit(1);
  });
});
req.on("error", (e) => {
  console.error(`request error: ${e.message}`);
  process.exit(1);
});
