"""A Python `requests` + PySocks client for the SOCKS end-to-end tests (tests/socks.e2e.test.ts).

Run with the system interpreter, which has python3-requests and python3-socks:
    /usr/bin/python3 tests/interop/socks_client.py --proxy socks5h://127.0.0.1:P --url URL
        [--verify CAFILE] [--post N]

`socks5h://` makes PySocks send the host name (the proxy resolves it); `socks5://` resolves
locally and sends the address. The proxy is passed explicitly for both schemes, and
trust_env=False keeps NO_PROXY/ALL_PROXY from the environment out of the picture.

Prints one JSON line {"status", "bytes", "sha256", "xSha256", "text"[, "sentSha256"]} and exits 0;
an exception is printed on stderr with exit code 1.
"""
import argparse
import hashlib
import json
import random
import sys

import requests


def pattern(total, digest):
    """Seeded pseudo-random bytes in 1 MiB chunks (any deterministic stream will do; the origin hashes it)."""
    rng = random.Random(12345)
    sent = 0
    while sent < total:
        chunk = rng.randbytes(min(1 << 20, total - sent))
        digest.update(chunk)
        sent += len(chunk)
        yield chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--verify", default=None)
    ap.add_argument("--post", type=int, default=-1)
    a = ap.parse_args()
    s = requests.Session()
    s.trust_env = False
    proxies = {"http": a.proxy, "https": a.proxy}
    verify = a.verify if a.verify else True
    sent = hashlib.sha256()
    if a.post >= 0:
        body = b"".join(pattern(a.post, sent))
        r = s.post(a.url, data=body, proxies=proxies, verify=verify, timeout=60)
    else:
        r = s.get(a.url, proxies=proxies, verify=verify, timeout=60)
    out = {
        "status": r.status_code,
        "bytes": len(r.content),
        "sha256": hashlib.sha256(r.content).hexdigest(),
        "xSha256": r.headers.get("X-Sha256", ""),
        "text": r.content[:4096].decode("latin-1"),
    }
    if a.post >= 0:
        out["sentSha256"] = sent.hexdigest()
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure to the test
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
