#!/usr/bin/env python3
"""Start-up of sidecar-proxy binaries side by side: exec until the --ready-file appears, binaries
alternated, medians printed. For an A/B of two builds when the full run's start-up row moved:
the full run compares with peers, this compares builds on the same minutes of the machine.

    python3 bench/startup-ab.py [--rounds N] [--admin] BIN [BIN...]
"""
import os, statistics, subprocess, sys, tempfile, time

def one(binary: str, admin: bool) -> float:
    ready = os.path.join(tempfile.gettempdir(), f"startup-ab-{os.getpid()}.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    args = [binary, "--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", "9",
            "--proxy-in-port", "0", "--in-bind", "127.0.0.1", "--log-level", "error", "--ready-file", ready]
    args += ["--admin-port", "0"] if admin else ["--no-admin"]
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = start + 10
    while not os.path.exists(ready):
        if time.perf_counter() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"{binary}: no ready file within 10 s")
        time.sleep(0.0002)
    elapsed = (time.perf_counter() - start) * 1000
    proc.kill()
    proc.wait()
    os.unlink(ready)
    return elapsed

def main() -> None:
    argv = sys.argv[1:]
    rounds, admin = 15, False
    if "--admin" in argv:
        argv.remove("--admin")
        admin = True
    if "--rounds" in argv:
        i = argv.index("--rounds")
        rounds = int(argv[i + 1])
        del argv[i:i + 2]
    if not argv:
        raise SystemExit(__doc__)
    times = {b: [] for b in argv}
    for _ in range(rounds):
        for b in argv:
            times[b].append(one(b, admin))
    for b, t in times.items():
        print(f"{b}: median {statistics.median(t):.1f} ms, min {min(t):.1f}, max {max(t):.1f} ({rounds} starts{', admin on' if admin else ''})")

main()
