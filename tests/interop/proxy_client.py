"""Python proxy clients for the HTTP and SOCKS end-to-end tests (tests/http-clients.e2e.test.ts,
tests/socks.e2e.test.ts).

Run with the system interpreter, which has python3-requests and python3-socks:
    /usr/bin/python3 tests/interop/proxy_client.py --lib urllib|requests
        --proxy http://127.0.0.1:P | socks5h://127.0.0.1:P | socks5://... --url URL
        [--verify CAFILE] [--post N]

Both libraries get the proxy explicitly, for http and https URLs alike: through an HTTP proxy an
http:// URL goes out as an absolute-form request, an https:// URL through a CONNECT tunnel.
`requests` also speaks SOCKS through PySocks: `socks5h://` sends the host name (the proxy
resolves it), `socks5://` resolves locally and sends the address. The `requests` session does not
read proxy settings from the environment (trust_env=False); the tests clear them for urllib.

Prints one JSON line {"status", "bytes", "sha256", "xSha256", "text"[, "sentSha256"]} and exits 0
(an HTTP error status is still a result); a transport exception is printed on stderr, exit 1.
"""
import argparse
import hashlib
import json
import random
import ssl
import sys
import urllib.error
import urllib.request


def pattern(total, digest):
    """Seeded pseudo-random bytes (any deterministic stream will do: the origin hashes what it gets)."""
    data = random.Random(12345).randbytes(total)
    digest.update(data)
    return data


def result(status, content, headers):
    return {
        "status": status,
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "xSha256": headers.get("X-Sha256", "") or "",
        "text": content[:4096].decode("latin-1"),
    }


def with_urllib(a, body):
    handlers = [urllib.request.ProxyHandler({"http": a.proxy, "https": a.proxy})]
    if a.verify:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=a.verify)))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(a.url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with opener.open(req, timeout=60) as r:
            return result(r.status, r.read(), r.headers)
    except urllib.error.HTTPError as e:  # a status >= 400 is an answer, not a failure
        return result(e.code, e.read(), e.headers)


def with_requests(a, body):
    import requests

    s = requests.Session()
    s.trust_env = False
    proxies = {"http": a.proxy, "https": a.proxy}
    verify = a.verify if a.verify else True
    if body is not None:
        r = s.post(a.url, data=body, proxies=proxies, verify=verify, timeout=60)
    else:
        r = s.get(a.url, proxies=proxies, verify=verify, timeout=60)
    return result(r.status_code, r.content, r.headers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=["urllib", "requests"], required=True)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--verify", default=None)
    ap.add_argument("--post", type=int, default=-1)
    a = ap.parse_args()
    sent = hashlib.sha256()
    body = pattern(a.post, sent) if a.post >= 0 else None
    out = with_urllib(a, body) if a.lib == "urllib" else with_requests(a, body)
    if body is not None:
        out["sentSha256"] = sent.hexdigest()
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure to the test
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
