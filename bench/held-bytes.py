#!/usr/bin/env python3
"""How many bytes a TCP reverse proxy holds for a client when its upstream never reads.

    python3 bench/held-bytes.py [--bin BIN] [--max-buffered-bytes SIZE]

Runs BIN (default dist/sidecar-proxy-linux-x64) in front of an upstream that accepts and never
reads, writes from one client until the kernel takes no more for a second (at most 10 s), and
prints: bytes the client sent, bytes the proxy read (/connections bytesUp), bytes in the
kernel's queues toward the upstream (`ss`: the proxy's Send-Q and the upstream's Recv-Q), and
the difference, which is what the proxy itself holds. Loopback only.
"""
import argparse, json, os, socket, subprocess, time, urllib.request

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(here, "..", "dist", "sidecar-proxy-linux-x64"))
ap.add_argument("--max-buffered-bytes")
a = ap.parse_args()

mute = socket.socket()
mute.bind(("127.0.0.1", 0))
mute.listen(16)
mport = mute.getsockname()[1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


port, admin = free_port(), free_port()
args = [a.bin, "--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", str(mport),
        "--proxy-in-port", str(port), "--in-bind", "127.0.0.1", "--admin-port", str(admin), "--admin-bind", "127.0.0.1", "--log-level", "error"]
if a.max_buffered_bytes:
    args += ["--max-buffered-bytes", a.max_buffered_bytes]
proxy = subprocess.Popen(args)
try:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    c = socket.create_connection(("127.0.0.1", port))
    c.setblocking(False)
    up, _ = mute.accept()
    sent, stuck, chunk = 0, 0, b"x" * 65536
    deadline = time.time() + 10
    while time.time() < deadline and stuck < 20:
        try:
            sent += c.send(chunk)
            stuck = 0
        except BlockingIOError:
            stuck += 1
            time.sleep(0.05)
    conns = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/connections", timeout=5))
    read = max(x["bytesUp"] for x in conns["active"])
    proxy_port = up.getpeername()[1]
    in_kernel = 0
    for line in subprocess.run(["ss", "-tnH"], capture_output=True, text=True).stdout.splitlines():
        f = line.split()
        local, peer = f[3], f[4]
        if local.endswith(f":{proxy_port}") and peer.endswith(f":{mport}"):
            in_kernel += int(f[2])  # the proxy's Send-Q
        if local.endswith(f":{mport}") and peer.endswith(f":{proxy_port}"):
            in_kernel += int(f[1])  # the upstream's Recv-Q
    limit = a.max_buffered_bytes or "64KiB (default)"
    print(f"--max-buffered-bytes {limit}: client sent {sent}, proxy read {read}, kernel toward upstream {in_kernel}, held in the proxy {read - in_kernel}")
    c.close()
    up.close()
finally:
    proxy.terminate()
    proxy.wait(10)
