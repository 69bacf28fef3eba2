/**
 * The plain-head path in a loop (lib/listeners/http-plain*.ts): scan, check and rewrite one
 * request head for a reverse listener, as the proxy does per request, without sockets. Heads:
 * wrk's (one field, what bench/run.sh's http mode sends) and a browser's (15 fields).
 *
 *   bun bench/heads.ts          prints µs per head, 5 runs of 500 000 after a warm-up
 *
 * A hot loop: a lower bound of what a head costs in the proxy, where the code is colder between
 * requests. For comparing two versions of the shortcut, not for absolute claims.
 */
import { DEFAULT_LIMITS } from "../lib/limits.ts";
import { PlainRequest, PlainReverseRequests } from "../lib/listeners/http-plain-request.ts";
import { plainOutput } from "../lib/listeners/http-plain.ts";
import { HeadScan, parseRequestHead } from "../lib/protocol/http1.ts";

const HEADS: Record<string, string> = {
  wrk: "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
  browser: [
    "GET /api/v1/items?page=2&sort=desc HTTP/1.1",
    "Host: shop.example.com",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Accept: application/json, text/plain, */*",
    "Accept-Language: en-US,en;q=0.9",
    "Accept-Encoding: gzip, deflate, br",
    "Referer: https://shop.example.com/items",
    "Cookie: session=abcdef0123456789; theme=dark; consent=yes",
    "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: cors",
    "Sec-Fetch-Site: same-origin",
    "Cache-Control: no-cache",
    "Pragma: no-cache",
    "Connection: keep-alive",
    "X-Request-Id: 7f3c2a10-1b2c-4d5e-8f90-0a1b2c3d4e5f",
    "",
    "",
  ].join("\r\n"),
};

const WARMUP = 200_000;
const RUNS = 5;
const PER_RUN = 500_000;

for (const [name, text] of Object.entries(HEADS)) {
  const head = new TextEncoder().encode(text);
  const scan = new HeadScan();
  const shortcut = new PlainReverseRequests("127.0.0.1");
  let check = 0;
  const once = (): void => {
    const r = parseRequestHead(head, DEFAULT_LIMITS, scan, shortcut);
    if (!r.ok || !(r.head instanceof PlainRequest)) throw new Error(`${name}: not taken by the plain shortcut`);
    const size = r.head.upstreamHeadSize();
    const out = plainOutput(size);
    check += r.head.writeUpstreamHead(out) === size ? 1 : 0;
  };
  for (let i = 0; i < WARMUP; i++) once();
  const times: string[] = [];
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    for (let i = 0; i < PER_RUN; i++) once();
    times.push((((performance.now() - t0) * 1000) / PER_RUN).toFixed(3));
  }
  if (check !== WARMUP + RUNS * PER_RUN) throw new Error(`${name}: a head was written short`);
  console.log(`${name.padEnd(8)} ${text.length} bytes: ${times.join(" ")} µs per head`);
}
